"""The stored codes of the output's uint8 variables, in a module that imports nothing, so that
readers (exports, reports, comparisons) share them without loading the writers.

See :mod:`tilerun.sinks.layout.variables` for the variables.
"""

#: The labels' nodata value: their Zarr fill value and ``nodata`` attribute.
LABEL_FILL = 255
#: Probabilities are stored as ``round(p * PROBABILITY_SCALE)`` in uint8 (0 … 254) ...
PROBABILITY_SCALE = 254
#: ... and this code marks nodata (the CF ``_FillValue``: decoded as NaN).
PROBABILITY_FILL = 255
