"""Exports of finished outputs to files other tools open: Cloud-Optimized GeoTIFF, vector
polygons (GeoPackage, GeoParquet, FlatGeobuf, GeoJSON) and QuPath GeoJSON for slides.

Every export streams: the store is read chunk by chunk and the file written as it goes, under
a temporary name renamed on success (:mod:`tilerun.exports.target`).
"""

from tilerun.exports.cog import CogOptions, CogSummary, write_cog
from tilerun.exports.export import FORMATS, ExportSummary, export, export_format
from tilerun.exports.polygons import Region, regions, to_frame
from tilerun.exports.qupath import QupathOptions, QupathSummary, write_qupath
from tilerun.exports.reader import FinishedOutput, open_finished
from tilerun.exports.target import ExportTarget
from tilerun.exports.vectors import VectorSummary, write_vectors

__all__ = [
    "FORMATS",
    "CogOptions",
    "CogSummary",
    "ExportSummary",
    "ExportTarget",
    "FinishedOutput",
    "QupathOptions",
    "QupathSummary",
    "Region",
    "VectorSummary",
    "export",
    "export_format",
    "open_finished",
    "regions",
    "to_frame",
    "write_cog",
    "write_qupath",
    "write_vectors",
]
