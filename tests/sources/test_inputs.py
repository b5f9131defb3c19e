"""A job's inputs: folders, globs, @lists and STAC documents expand to the same scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from tilerun.errors import InputError
from tilerun.sources.inputs import expand_inputs, is_plain, output_stems, scene_source


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three rasters (bytes are enough: nothing here opens them) and a file that is not one."""
    data = tmp_path / "scenes"
    data.mkdir()
    for name in ("b.tif", "a.tif", "c.TIFF"):
        (data / name).write_bytes(b"x")
    (data / "notes.txt").write_text("not a raster")
    (data / "sub").mkdir()
    (data / "sub" / "deeper.tif").write_bytes(b"x")
    return data


def _item(path: Path, roles: list[str] | None = None) -> pystac.Item:
    item = pystac.Item(path.stem, None, None, pystac.utils.str_to_datetime("2024-06-01T00:00:00Z"),
                       {})
    item.add_asset("image", pystac.Asset(str(path), media_type=pystac.MediaType.COG,
                                         roles=roles or ["data"]))
    item.add_asset("thumbnail", pystac.Asset(str(path.with_suffix(".png")),
                                             media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    return item


def _resolved(entries: list) -> set[Path]:
    refs = []
    for entry in entries:
        assert entry.problem is None, entry
        ref, _ = scene_source(entry, None)
        refs.append(Path(ref).resolve())
    assert len(refs) == len(set(refs))
    return set(refs)


def test_folder_glob_list_and_stac_give_the_same_scenes(folder: Path, tmp_path: Path) -> None:
    from_folder = expand_inputs([folder])
    assert [Path(e.ref).name for e in from_folder] == ["a.tif", "b.tif", "c.TIFF"]  # sorted, direct
    from_glob = expand_inputs([str(folder / "*.[tT][iI][fF]*")])
    listing = tmp_path / "list.txt"
    listing.write_text("# the study's scenes\n\nscenes/a.tif\n  scenes/b.tif  \n"
                       f"{folder / 'c.TIFF'}\n# scenes/sub/deeper.tif\n")
    from_list = expand_inputs([f"@{listing}"])
    collection = pystac.ItemCollection([_item(p) for p in sorted(folder.glob("*.*"))
                                        if p.suffix != ".txt"])
    stac_file = tmp_path / "search.json"
    stac_file.write_text(json.dumps(collection.to_dict()))
    from_stac = expand_inputs([str(stac_file)])
    assert {e.stem for e in from_stac} == {"a", "b", "c"}
    expected = _resolved(from_folder)
    assert _resolved(from_glob) == expected
    assert _resolved(from_list) == expected
    assert _resolved(from_stac) == expected
    assert _resolved(expand_inputs([collection])) == expected  # pystac objects, as the API takes
    # One Item JSON is a collection of one.
    one = tmp_path / "item.json"
    one.write_text(json.dumps(_item(folder / "a.tif").to_dict()))
    assert _resolved(expand_inputs([one])) == {(folder / "a.tif").resolve()}


def test_each_scene_once_in_the_order_given(folder: Path) -> None:
    entries = expand_inputs([folder / "c.TIFF", folder, str(folder / "a.tif")])
    assert [Path(e.ref).name for e in entries] == ["c.TIFF", "a.tif", "b.tif"]


def test_arguments_that_yield_nothing_fail_alone(tmp_path: Path, folder: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    entries = expand_inputs([empty, str(tmp_path / "*.nothing"), f"@{tmp_path / 'none.txt'}",
                             str(tmp_path / "missing.tif"), folder / "a.tif"])
    problems = [(Path(e.ref).name, e.problem) for e in entries]
    assert problems[0] == ("empty", problems[0][1]) and "holds no raster" in problems[0][1]
    assert problems[1][1] == "matches no file"
    assert "cannot read the list" in (problems[2][1] or "")
    # A missing raster is a scene: it fails when opened, naming itself, like any bad input.
    assert problems[3] == ("missing.tif", None) and problems[4] == ("a.tif", None)
    bad_stac = tmp_path / "broken.json"
    bad_stac.write_text('{"type": "Catalog"}')
    (entry,) = expand_inputs([bad_stac])
    assert "not a readable STAC" in (entry.problem or "")


def test_plain_inputs_keep_the_single_scene_path(folder: Path) -> None:
    assert is_plain(folder / "a.tif") and is_plain("missing.tif")
    assert is_plain("s3://bucket/scene.tif") and is_plain("https://host/scene.tif")
    assert not is_plain(folder)
    assert not is_plain(str(folder / "*.tif"))
    assert not is_plain("@list.txt")
    # One STAC Item is one scene into one output; an ItemCollection is a job of its Items.
    collection = folder / "search.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    item = folder / "item.json"
    item.write_text(json.dumps({"type": "Feature", "id": "x"}))
    assert not is_plain(collection) and is_plain(item)


def test_colliding_stems_are_told_apart_by_folder(tmp_path: Path) -> None:
    entries = expand_inputs(["a/scene.tif", "b/scene.tif", "b/other.tif", "s3://bkt/c/SCENE.jp2",
                             "a_scene.tif"])
    stems, notes = output_stems(entries)
    assert stems == ["a_scene", "b_scene", "other", "c_SCENE", "a_scene-2"]
    assert len(notes) == 2 and "a/scene.tif → a_scene.zarr" in notes[0]
    # The names do not depend on the order (a resumed job finds the same outputs).
    again, _ = output_stems(expand_inputs(["b/scene.tif", "a/scene.tif"]))
    assert again == ["b_scene", "a_scene"]


def test_a_multi_asset_item_is_refused_with_one_line(tmp_path: Path) -> None:
    item = _item(tmp_path / "red.tif")
    item.add_asset("nir", pystac.Asset(str(tmp_path / "nir.tif"), roles=["data"],
                                       media_type=pystac.MediaType.COG))
    (entry,) = expand_inputs([item])
    with pytest.raises(InputError, match="has 2 raster assets and no eo:bands"):
        scene_source(entry, None)
