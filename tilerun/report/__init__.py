"""The run report: input statistics and drift, output statistics, timing (stored with the
output, shown by ``tilerun report``), and the comparison of two outputs (``tilerun compare``).

Modules: :mod:`.inputs`, :mod:`.outputs`, :mod:`.drift`, :mod:`.timing` measure;
:mod:`.collect` gathers chunk measurements into a :mod:`.record`; :mod:`.entropy_map`,
:mod:`.svg`, :mod:`.html` and :mod:`.text` present it, with a :mod:`.quicklook` of the labels
(PNG by :mod:`.png`, also ``tilerun quicklook``); :mod:`.compare` compares two outputs.
Nothing is imported here, so the engine's import of :mod:`.collect` stays light.
"""
