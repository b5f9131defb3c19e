"""The output's variables: what each holds, its type, chunks, codec, fill and attributes.

Variables (``xarray.open_zarr(path, decode_coords="all")`` + rioxarray give back CRS and affine):

* ``logits(class, y, x)`` float32 or float16, chunks ``(classes, Z, Z)``, NaN where the input
  was nodata;
* ``labels(y, x)`` uint8 argmax (optional), :data:`LABEL_FILL` where nodata: the Zarr fill value
  and a ``nodata`` attribute (rioxarray), not a CF ``_FillValue``, so xarray keeps it uint8;
* ``probabilities(class, y, x)`` uint8 (optional), chunks ``(classes, Z, Z)``: class
  probabilities ``p`` in [0, 1], stored as ``round(p * 254)`` with 255 (:data:`PROBABILITY_FILL`)
  where nodata, and the CF attributes ``scale_factor = 1/254``, ``add_offset = 0``,
  ``_FillValue = 255``, so that ``xarray.open_zarr`` decodes them to float probabilities with
  NaN where nodata (``mask_and_scale=False`` gives the raw codes). Why 254 and not 255: 255 is
  the nodata code, so data has the codes 0 … 254, which span [0, 1] in 254 equal steps (0 and
  1 both exact); with scale 1/254 a decoded value is within half a step, 1/508 (≈ 0.002), of
  the probability computed from the float32 logits (plus float rounding, < 1e-6). A quarter
  of the size of float32 logits, half that of float16 ones.
  ``p`` is the softmax over classes of the blended float32 logits when the model's spec
  says ``activation: softmax`` (the default; the ``probabilities`` of a pixel then sum to 1
  within ``classes / 508``), and a sigmoid per class for ``activation: sigmoid`` (multi-label:
  no sum constraint) or for a one-class model (``P(class) = sigmoid(logit)``, as the labels'
  ``logit > 0`` and the NGFF probability pyramid's class channel). A model whose spec says
  ``activation: none`` has no probabilities; asking for them is an error before any work;
* ``spatial_ref``: scalar with ``crs_wkt`` and ``GeoTransform`` (written by rioxarray), named by
  every raster variable's ``grid_mapping``; ``x``/``y`` pixel-centre coordinates.

:class:`OutputLayout` is the shape of a run's output, :func:`skeleton` the lazy xarray
dataset the Zarr sink writes the metadata and coordinates from, and :func:`encoding` the
per-variable Zarr encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from tilerun.classes.probabilities import activation_for
from tilerun.errors import OutputError
from tilerun.geometry import GeoRef
from tilerun.sinks.layout.codes import LABEL_FILL, PROBABILITY_FILL, PROBABILITY_SCALE

OUTPUT_VARIABLES = ("logits", "labels", "probabilities")
LOGIT_DTYPES = ("float32", "float16")
#: Model activations that define probabilities (the spec's third choice, ``none``, does not).
PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class OutputLayout:
    """Shape and encoding of the output store."""

    height: int
    width: int
    classes: int
    chunk: int
    variables: tuple[str, ...] = ("logits",)
    logits_dtype: str = "float32"
    class_names: tuple[str, ...] | None = None
    #: the model spec's ``activation``: how ``probabilities`` are computed from the logits
    activation: str = "softmax"
    #: Zarr format: 3, or 2 for GDAL readers (see :func:`encoding`)
    zarr_format: int = 3

    @property
    def chunk_grid(self) -> tuple[int, int]:
        return -(-self.height // self.chunk), -(-self.width // self.chunk)

    @property
    def probability_activation(self) -> str:
        """``sigmoid`` per class for a sigmoid model or a one-class model, else ``softmax``.

        A one-class model's probability is ``sigmoid(logit)`` whatever its spec says (a softmax
        over one class would be 1 everywhere), matching its labels (``logit > 0``).
        """
        return activation_for(self.classes, self.activation)

    def __post_init__(self) -> None:
        unknown = set(self.variables) - set(OUTPUT_VARIABLES)
        if unknown or not self.variables:
            raise OutputError("--write", f"choose from {OUTPUT_VARIABLES}, got {self.variables}")
        if self.logits_dtype not in LOGIT_DTYPES:
            raise OutputError("--dtype", f"choose from {LOGIT_DTYPES}, got {self.logits_dtype}")
        if "labels" in self.variables and self.classes >= LABEL_FILL:
            raise OutputError("--write", f"labels hold at most {LABEL_FILL - 1} classes")
        if "probabilities" in self.variables and self.activation not in PROBABILITY_ACTIVATIONS:
            raise OutputError(
                "--write",
                f"probabilities need a model whose activation is one of "
                f"{PROBABILITY_ACTIVATIONS}; this model's spec says {self.activation!r}",
            )


def skeleton(layout: OutputLayout, georef: GeoRef | None) -> xr.Dataset:
    """A lazy dataset with the output's variables, coordinates and georeferencing."""
    h, w, k, z = layout.height, layout.width, layout.classes, layout.chunk
    # Integer class indices: Zarr v3 has no standard string type yet. Names go in attributes,
    # and labels carry the CF categorical attributes flag_values / flag_meanings.
    coords: dict[str, Any] = {"class": np.arange(k, dtype=np.int16)}
    names = list(layout.class_names) if layout.class_names else [str(i) for i in range(k)]
    centres = georef.pixel_centres(h, w) if georef is not None else None
    if centres is not None:
        coords["y"], coords["x"] = centres
    data: dict[str, xr.DataArray] = {}
    if "logits" in layout.variables:
        empty = da.empty((k, h, w), dtype=layout.logits_dtype, chunks=(k, z, z))
        data["logits"] = xr.DataArray(
            empty, dims=("class", "y", "x"), attrs={"class_names": names, "units": "1"}
        )
    if "labels" in layout.variables:
        empty = da.empty((h, w), dtype=np.uint8, chunks=(z, z))
        meanings = [n.replace(" ", "_") for n in names]
        if k == 1:  # one class: labels are logit > 0
            meanings = [f"not_{meanings[0]}", meanings[0]]
        flags = {"flag_values": list(range(len(meanings))), "flag_meanings": " ".join(meanings)}
        # ``nodata`` (rioxarray's ``.rio.nodata``), not CF ``_FillValue``: a _FillValue makes
        # xarray decode the labels to float32 with NaN, and they are categories (uint8).
        data["labels"] = xr.DataArray(empty, dims=("y", "x"),
                                      attrs={**flags, "nodata": LABEL_FILL})
    if "probabilities" in layout.variables:
        # Decoded type (float32) here; _encoding stores it as uint8 with CF scale and fill.
        empty = da.empty((k, h, w), dtype=np.float32, chunks=(k, z, z))
        how = ("softmax over class" if layout.probability_activation == "softmax"
               else "sigmoid per class")
        data["probabilities"] = xr.DataArray(
            empty, dims=("class", "y", "x"),
            attrs={
                "class_names": names, "units": "1", "long_name": "class probability",
                "activation": layout.probability_activation,
                "comment": f"{how} of the blended float32 logits; stored as "
                           f"round(p * {PROBABILITY_SCALE}) in uint8, {PROBABILITY_FILL} where "
                           "nodata (decoded values are within 1/508 of p)",
            },
        )  # fmt: skip
    ds = xr.Dataset(data, coords=coords)
    if georef is not None:
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        if georef.crs_wkt is not None:
            ds = ds.rio.write_crs(georef.crs_wkt)
        ds = ds.rio.write_transform(_affine(georef))
        for name in data:
            ds[name].encoding.pop("grid_mapping", None)
            ds[name].attrs["grid_mapping"] = "spatial_ref"
    return ds


def _affine(georef: GeoRef) -> Any:
    from affine import Affine

    return Affine(*georef.transform)


def output_codec(zarr_format: int = 3) -> Any:
    """Blosc LZ4 with byte shuffle: the codec every output variable is written with.

    Chosen for speed, measured on 4×1024² float32 logit chunks (``bench_pipeline.py``, see
    benchmarks/RESULTS.md): LZ4+shuffle compresses at ~4× the speed of Zarr's default Zstd
    (level 0) for about the same ratio, so writing stays a small share of the engine's CPU.
    Byte shuffle groups the exponent bytes of neighbouring floats, which is where smooth logits
    compress; Blosc decompresses at GB/s, so readers lose nothing either.
    """
    if zarr_format == 2:
        from numcodecs import Blosc

        return Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def output_codecs(zarr_format: int = 3) -> tuple[Any, ...]:
    """The byte codecs of every output variable: :func:`output_codec`, then, in Zarr v3, Zarr's
    ``crc32c`` checksum, which every v3 reader checks before decompressing a chunk (a damaged
    chunk is then an error, not garbage; see :mod:`tilerun.sinks.integrity`). Zarr v2 has no
    standard checksum codec its GDAL readers know: its chunks are checked against tilerun's own
    record only."""
    if zarr_format == 2:
        return (output_codec(2),)
    from zarr.codecs import Crc32cCodec

    return output_codec(3), Crc32cCodec()


def encoding(layout: OutputLayout) -> dict[str, dict[str, Any]]:
    """Per-variable Zarr encoding.

    Labels' Zarr ``fill_value`` is :data:`LABEL_FILL`, so a chunk never written reads as
    nodata, not as class 0, in every reader (GDAL takes it for the band's nodata). In v3 it is
    the array's fill value only, and xarray keeps labels uint8; Zarr v2 has no such split —
    xarray takes a v2 fill value for ``_FillValue`` and decodes labels to float32 with NaN
    unless opened with ``mask_and_scale=False``.
    """
    k, z = layout.classes, layout.chunk
    encoding: dict[str, dict[str, Any]] = {}
    codec = output_codecs(layout.zarr_format)
    label_fill = "fill_value" if layout.zarr_format == 3 else "_FillValue"
    if "logits" in layout.variables:
        encoding["logits"] = {"chunks": (k, z, z), "_FillValue": np.nan, "compressors": codec}
    if "labels" in layout.variables:
        encoding["labels"] = {"chunks": (z, z), label_fill: LABEL_FILL, "compressors": codec}
    if "probabilities" in layout.variables:
        # xarray writes scale_factor, add_offset and _FillValue as array attributes, where its
        # CF decoding (open_zarr's default mask_and_scale=True) reads them back: codes become
        # code / 254 (float64), and 255 becomes NaN.
        encoding["probabilities"] = {
            "chunks": (k, z, z), "dtype": "uint8", "scale_factor": 1.0 / PROBABILITY_SCALE,
            "add_offset": 0.0, "_FillValue": PROBABILITY_FILL, "compressors": codec,
        }  # fmt: skip
    return encoding
