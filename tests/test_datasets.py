"""The dataset readers on tiny fixtures written in each dataset's exact distributed format."""

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from hubbench.tasks.datasets import DatasetError
from hubbench.tasks.paper_cls import Aircraft, Cars, Cifar100, Coco70, DMLab, EuroSAT, Indoor67
from hubbench.tasks.synth_data import cars_annotations, py2_pickle

_buf = io.BytesIO()
Image.new("RGB", (4, 4), (200, 30, 60)).save(_buf, format="JPEG")
JPEG = _buf.getvalue()


def jpegs(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(JPEG)


def text(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(newline.join(lines) + newline)
    return path


def relative(listing, root):
    return {k: [(str(p.relative_to(root)), y) for p, y in v] for k, v in listing.splits.items()}


# -- CIFAR-100 ------------------------------------------------------------------------------------
def cifar(root: Path, sizes=(5, 3)) -> dict[str, np.ndarray]:
    base, rng, data = root / "cifar-100-python", np.random.default_rng(0), {}
    names = [f"class{i}" for i in range(100)]
    py2_pickle(base / "meta", {"fine_label_names": names, "coarse_label_names": [f"super{i}" for i in range(20)]})
    for split, n in zip(("train", "test"), sizes, strict=True):
        data[split] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        py2_pickle(base / split, {"batch_label": f"{split} batch", "filenames": [f"{i}.png" for i in range(n)],
                                  "fine_labels": [(7 * i) % 100 for i in range(n)],
                                  "coarse_labels": [i % 20 for i in range(n)], "data": data[split]})
    return data


def test_cifar100_reads_the_python2_pickles_as_hwc_images(tmp_path):
    data = cifar(tmp_path)
    assert (tmp_path / "cifar-100-python" / "train").read_bytes().startswith(b"\x80\x02}")
    listing = Cifar100.read(tmp_path)
    assert listing.classes[:2] == ["class0", "class1"] and len(listing.classes) == 100
    assert listing.train_split == "train" and {k: len(v) for k, v in listing.splits.items()} == {"train": 5, "test": 3}
    image, label = listing.splits["train"][2]
    assert label == 14 and image.dtype == np.uint8 and image.shape == (32, 32, 3)
    row = data["train"][2]  # red plane, then green, then blue, each 32x32 row-major
    assert image[0, 0].tolist() == [row[0], row[1024], row[2048]]
    assert image[1, 3, 2] == row[2048 + 32 + 3]


class Payload:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_cifar100_refuses_a_pickle_that_would_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cifar(tmp_path)
    evil = tmp_path / "cifar-100-python" / "train"
    evil.write_bytes(pickle.dumps({"data": Payload(), "fine_labels": []}, protocol=2))
    with pytest.raises(DatasetError, match=r"refused to load global (posix|nt|os)\.system") as err:
        Cifar100.read(tmp_path)
    assert str(evil) in str(err.value) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("corrupt, problem", [
    (lambda f: f.write_bytes(f.read_bytes()[:100]), "not a valid pickle"),
    (lambda f: py2_pickle(f, {"data": np.zeros((2, 3072), np.float32), "fine_labels": [0, 0]}), "not a uint8 array"),
    (lambda f: py2_pickle(f, {"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 100]}), "'fine_labels'"),
    (lambda f: py2_pickle(f, {"data": np.zeros((2, 3072), np.uint8)}), "no key 'fine_labels'"),
])
def test_cifar100_malformed_files(tmp_path, corrupt, problem):
    cifar(tmp_path)
    corrupt(tmp_path / "cifar-100-python" / "test")
    with pytest.raises(DatasetError, match=problem) as err:
        Cifar100.read(tmp_path)
    assert str(tmp_path / "cifar-100-python" / "test") in str(err.value) and "cifar-100-python/{train" in str(err.value)


# -- COCO-70 --------------------------------------------------------------------------------------
COCO_CLASSES = ["person", "bicycle", "traffic light"]  # the file's order, not alphabetical


def test_coco70_from_list_files(tmp_path):
    text(tmp_path / "classes.txt", COCO_CLASSES)
    lists = {"train": ["train/person/1.jpg 0", "train/bicycle/2.jpg 1", "train/traffic light/3.jpg 2",
                       "train/person/4.jpg 0"],
             "dev": ["dev/bicycle/5.jpg 1"], "test": ["test/traffic light/6.jpg 2", "test/person/7.jpg 0"]}
    for split, lines in lists.items():
        text(tmp_path / f"{split}.txt", lines)
        jpegs(tmp_path, *(line.rsplit(" ", 1)[0] for line in lines))
    listing = Coco70.read(tmp_path)
    assert listing.classes == COCO_CLASSES
    assert relative(listing, tmp_path) == {
        "train": [("train/person/1.jpg", 0), ("train/bicycle/2.jpg", 1), ("train/traffic light/3.jpg", 2),
                  ("train/person/4.jpg", 0)],
        "val": [("dev/bicycle/5.jpg", 1)], "test": [("test/traffic light/6.jpg", 2), ("test/person/7.jpg", 0)]}


def test_coco70_from_class_folders_follows_classes_txt(tmp_path):
    text(tmp_path / "classes.txt", COCO_CLASSES)
    jpegs(tmp_path, "train/person/b.jpg", "train/person/a.jpg", "train/bicycle/c.jpg", "train/traffic light/d.jpg",
          "test/person/e.jpg", "test/bicycle/f.jpg", "test/traffic light/g.jpg")
    (tmp_path / "train" / "person" / "notes.txt").write_text("not an image")
    listing = Coco70.read(tmp_path)
    assert set(listing.splits) == {"train", "test"}  # no dev: no 'val'
    assert relative(listing, tmp_path)["train"] == [
        ("train/person/a.jpg", 0), ("train/person/b.jpg", 0), ("train/bicycle/c.jpg", 1),
        ("train/traffic light/d.jpg", 2)]


def test_coco70_label_out_of_range(tmp_path):
    text(tmp_path / "classes.txt", COCO_CLASSES)
    text(tmp_path / "train.txt", ["train/x.jpg 3"])
    with pytest.raises(DatasetError, match=r"unknown label '3'.*<root>/classes.txt") as err:
        Coco70.read(tmp_path)
    assert str(tmp_path / "train.txt") in str(err.value)


# -- FGVC-Aircraft --------------------------------------------------------------------------------
def aircraft(root: Path) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    text(data / "variants.txt", ["707-320", "Cessna 172", "F/A-18"])
    splits = {"train": ["1025794 707-320", "0034309 Cessna 172"], "val": ["0056978 F/A-18"],
              "test": ["1514522 Cessna 172", "0062781 F/A-18", "0201580 707-320"]}
    splits["trainval"] = splits["train"] + splits["val"]
    for split, lines in splits.items():
        text(data / f"images_variant_{split}.txt", lines)
        jpegs(data / "images", *(f"{line.split()[0]}.jpg" for line in lines))
    return data


def test_aircraft_variants_with_spaces_and_slashes(tmp_path):
    data = aircraft(tmp_path)
    listing = Aircraft.read(tmp_path)
    assert listing.classes == ["707-320", "Cessna 172", "F/A-18"] and listing.train_split == "trainval"
    assert {k: len(v) for k, v in listing.splits.items()} == {"train": 2, "val": 1, "trainval": 3, "test": 3}
    assert listing.splits["test"] == [(data / "images" / "1514522.jpg", 1), (data / "images" / "0062781.jpg", 2),
                                      (data / "images" / "0201580.jpg", 0)]


def test_aircraft_malformed_and_unknown_variant(tmp_path):
    data = aircraft(tmp_path)
    text(data / "images_variant_val.txt", ["0056978"])
    with pytest.raises(DatasetError, match="malformed line '0056978'.*<id> <variant name>"):
        Aircraft.read(tmp_path)
    text(data / "images_variant_val.txt", ["0056978 Cessna 208"])
    with pytest.raises(DatasetError, match="unknown label 'Cessna 208'"):
        Aircraft.read(tmp_path)


# -- Stanford Cars --------------------------------------------------------------------------------
def cars(root: Path, train=((1, "00001.jpg"), (3, "00002.jpg"), (2, "00003.jpg"), (1, "00004.jpg")),
         test=((3, "00001.jpg"),)) -> Path:
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": cars_annotations(list(train))})
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": cars_annotations(list(test))})
    jpegs(base / "cars_train", *(f for _, f in train))
    jpegs(base / "cars_test", *(f for _, f in test))
    return base


def test_cars_labels_are_zero_based(tmp_path):
    base = cars(tmp_path)
    listing = Cars.read(tmp_path)
    assert listing.classes == ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]
    assert [y for _, y in listing.splits["train"]] == [0, 2, 1, 0]
    assert listing.splits["test"] == [(base / "cars_test" / "00001.jpg", 2)]  # a single annotation too


def test_cars_rejects_class_zero_and_non_matlab_files(tmp_path):
    base = cars(tmp_path, test=((0, "00001.jpg"),))
    with pytest.raises(DatasetError, match=r"class 0 of 00001.jpg is not in 1..3.*MATLAB v5") as err:
        Cars.read(tmp_path)
    assert str(base / "cars_test_annos_withlabels.mat") in str(err.value)
    (base / "devkit" / "cars_meta.mat").write_text("class_names = ['a', 'b']")
    with pytest.raises(DatasetError, match="not a MATLAB v5 file"):
        Cars.read(tmp_path)
    savemat(base / "devkit" / "cars_meta.mat", {"names": np.array(["a"], dtype=object)})
    with pytest.raises(DatasetError, match="no variable 'class_names'"):
        Cars.read(tmp_path)


# -- MIT Indoor-67 --------------------------------------------------------------------------------
def test_indoor67_official_lists(tmp_path):
    train = ["kitchen/k1.jpg", "airport_inside/a1.jpg", "kitchen/k2.jpg", "bar/b 1.jpg"]
    test = ["bar/b2.jpg", "airport_inside/a2.jpg"]
    text(tmp_path / "TrainImages.txt", train, newline="\r\n")
    text(tmp_path / "TestImages.txt", test)
    jpegs(tmp_path / "Images", *train, *test)
    listing = Indoor67.read(tmp_path)
    assert listing.classes == ["airport_inside", "bar", "kitchen"]
    assert [y for _, y in listing.splits["train"]] == [2, 0, 2, 1]
    assert listing.splits["test"] == [(tmp_path / "Images" / "bar/b2.jpg", 1),
                                      (tmp_path / "Images" / "airport_inside/a2.jpg", 0)]
    text(tmp_path / "TestImages.txt", ["bar_b2.jpg"])
    with pytest.raises(DatasetError, match=r"TestImages.txt: malformed line 'bar_b2.jpg'; expected .*<category>/"):
        Indoor67.read(tmp_path)


# -- DMLab ----------------------------------------------------------------------------------------
def test_dmlab_vtab_lists(tmp_path):
    lines = {"train800val200.txt": ["images/train/0.jpg 5", "images/val/1.jpg 0"],
             "train800.txt": ["images/train/0.jpg 5"],
             "test.txt": ["images/test/2.jpg 3", "images/test/3.jpg 1", "images/test/4.jpg 3"]}
    for name, entries in lines.items():
        text(tmp_path / name, entries)
        jpegs(tmp_path, *(e.split()[0] for e in entries))
    listing = DMLab.read(tmp_path)
    assert listing.classes == ["0", "1", "2", "3", "4", "5"] and listing.train_split == "trainval"
    assert set(listing.splits) == {"trainval", "train", "test"}  # val200.txt absent
    assert listing.splits["trainval"] == [(tmp_path / "images/train/0.jpg", 5), (tmp_path / "images/val/1.jpg", 0)]
    assert [y for _, y in listing.splits["test"]] == [3, 1, 3]
    text(tmp_path / "test.txt", ["images/test/2.jpg 6"])
    with pytest.raises(DatasetError, match="unknown label '6'"):
        DMLab.read(tmp_path)


# -- EuroSAT --------------------------------------------------------------------------------------
EUROSAT = {c: [f"{c}_{i}.jpg" for i in range(1, 11)] for c in ("River", "AnnualCrop", "SeaLake")}


def eurosat(root: Path, reverse: bool = False) -> Path:
    order = [f"{c}/{f}" for c, files in EUROSAT.items() for f in files]
    jpegs(root / "2750", *(reversed(order) if reverse else order))
    return root / "2750"


def test_eurosat_seeded_split_is_stratified_and_independent_of_listing_order(tmp_path, monkeypatch):
    eurosat(tmp_path / "a")
    first = relative(EuroSAT.read(tmp_path / "a"), tmp_path / "a")
    eurosat(tmp_path / "b", reverse=True)
    listing = EuroSAT.read(tmp_path / "b")
    assert listing.classes == ["AnnualCrop", "River", "SeaLake"]
    assert relative(listing, tmp_path / "b") == first
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        assert np.bincount([y for _, y in listing.splits[split]]).tolist() == [n, n, n]
    everything = sorted(p.name for items in listing.splits.values() for p, _ in items)
    assert everything == sorted(f for files in EUROSAT.values() for f in files)
    # the split is pinned: a change to its definition would silently change every EuroSAT result
    assert [p.name for p, _ in listing.splits["val"]] == ["AnnualCrop_4.jpg", "AnnualCrop_8.jpg", "River_3.jpg",
                                                          "River_10.jpg", "SeaLake_6.jpg", "SeaLake_1.jpg"]

    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: reversed(list(iterdir(self))))
    assert relative(EuroSAT.read(tmp_path / "b"), tmp_path / "b") == first


# -- errors common to every reader ----------------------------------------------------------------
READERS = [Cifar100.read, Coco70.read, Aircraft.read, Cars.read,
           Indoor67.read, DMLab.read, EuroSAT.read]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__self__.name)
def test_missing_dataset_names_the_path_and_the_layout(tmp_path, reader):
    with pytest.raises(DatasetError) as err:
        reader(tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, ValueError)
    assert message.startswith(str(tmp_path / "nowhere")) and ": missing" in message and "; expected <root>/" in message
    assert err.value.path.is_relative_to(tmp_path / "nowhere")
    assert str(pickle.loads(pickle.dumps(err.value))) == message  # it survives a process pool


def test_a_listed_image_that_is_missing(tmp_path):
    aircraft(tmp_path)
    gone = tmp_path / "fgvc-aircraft-2013b" / "data" / "images" / "0062781.jpg"
    gone.unlink()
    with pytest.raises(DatasetError, match=r"missing image \(1 of the 3 images of split 'test'") as err:
        Aircraft.read(tmp_path)
    assert err.value.path == gone


def test_an_empty_list_file(tmp_path):
    text(tmp_path / "train800val200.txt", [""])
    with pytest.raises(DatasetError, match="train800val200.txt: empty; expected"):
        DMLab.read(tmp_path)
