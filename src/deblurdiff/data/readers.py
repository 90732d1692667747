"""Readers of the field's dataset layouts (CONVENTIONS.md), as ``build_dataset`` sources.

Paired sources (blurred and sharp frames on disk) support modes ``image`` and ``video``:

* ``gopro``: ``root/{train,test}/<seq>/{blur,blur_gamma,sharp}/000047.png`` (``data.blur_folder``
  picks ``blur`` or ``blur_gamma``)
* ``flat``: ``root/{train,test}/{input,target}/`` (Restormer) or ``.../{blur,sharp}/`` (MIMO-UNet)
* ``dvd``: ``root/quantitative_datasets/<seq>/{input,GT}/00000.jpg`` (``split`` train/test/all
  by the standard 10 test videos, or ``options.test_sequences``)
* ``reds``: ``root/{split}_blur/000/00000000.png`` and ``root/{split}_sharp/...``
* ``folder``: any folder with a pair of sub-folders (blur/sharp, input/target, input/GT, lq/gt),
  or a folder of such sequence folders

Sharp-only sources are blurred on the fly by averaging ``data.subframes`` consecutive frames
(as VDM-MD blurs BAIR) and support all modes (``exposure``, ``image`` with ``subframes``,
``video`` with ``data.frames`` blurred frames from ``frames * subframes`` sharp ones):

* ``bair``: per-clip folders of frames, or ``.npy``/``.npz`` arrays ``(F, H, W, 3)`` (or
  ``(N, F, H, W, 3)`` for many clips)
* ``clevrer``: ``.mp4`` files (searched recursively)
* ``video``: one video file, a folder of frames, or a folder of videos

Every item is cropped to ``data.crop`` (aligned across frames; random when ``data.augment``,
centred otherwise), and with ``augment`` flipped, rotated by 90 degrees and (clips) reversed in
time. The random choices come from a generator seeded by (``data.seed``, index, epoch), so an
item is reproducible; call ``set_epoch`` to get fresh crops each epoch.

A reader's length is the number of pairs or clip windows on disk (``data.length`` and
``data.size`` apply to the generated sources only).

``cfg.options``: ``clip_stride`` (frames between clip starts, default 1), ``linear`` and
``gamma`` (sharp-only sources: average in linear light), ``sequences`` (keep only these sequence
names), ``test_sequences`` (dvd).
"""
from __future__ import annotations

import abc
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..blur.formation import DEFAULT_GAMMA, middle_index, temporal_average
from ..blur.sources import training_seed
from ..errors import ConfigError, InputError
from .augment import augment
from .synthetic import gamma_option
from .io import is_image, is_video, list_images, natural_key, natural_sorted, read_image, stack_frames

#: The 10 test videos of DeepVideoDeblurring's quantitative set (the other 61 are training).
DVD_TEST_SEQUENCES = ("720p_240fps_2", "IMG_0003", "IMG_0021", "IMG_0030", "IMG_0031", "IMG_0032",
                      "IMG_0033", "IMG_0037", "IMG_0039", "IMG_0049")
PAIR_FOLDERS = (("blur", "sharp"), ("input", "target"), ("input", "GT"), ("input", "gt"), ("blurred", "sharp"),
                ("lq", "gt"), ("LQ", "GT"))
_OPTIONS = {"clip_stride", "linear", "gamma", "sequences", "test_sequences"}


def _sorted_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)


def _require_dir(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise InputError(f"{path}: folder not found; expected the layout {layout}")
    return path


def match_pairs(blur_dir: Path, sharp_dir: Path) -> list[tuple[Path, Path]]:
    """Blurred/sharp files matched by name stem, in natural order; a missing partner is an error."""
    blur = list_images(blur_dir)
    sharp = {p.stem: p for p in list_images(sharp_dir)}
    pairs = []
    for path in blur:
        if path.stem not in sharp:
            raise InputError(f"{path}: has no sharp partner named {path.stem}.* in {sharp_dir}")
        pairs.append((path, sharp[path.stem]))
    return pairs


class _Reader(Dataset, abc.ABC):
    """Shared parts: option checks, per-item generator, crop/augmentation."""

    modes: tuple = ("image", "video")

    def __init__(self, cfg):
        if cfg.mode not in self.modes:
            raise ConfigError(f"data.source {cfg.source!r} has no sharp sub-frames, so mode {cfg.mode!r} is not "
                              f"available; use mode {' or '.join(self.modes)}, or a sharp-frame source "
                              f"(bair, clevrer, video) for exposure")
        unknown = sorted(set(cfg.options) - _OPTIONS)
        if unknown:
            raise ConfigError(f"data.options: unknown key {unknown[0]!r} for source {cfg.source!r}; "
                              f"valid keys: {', '.join(sorted(_OPTIONS))}")
        if cfg.root is None:
            raise ConfigError(f"data.root is required for source {cfg.source!r}: the dataset's folder")
        self.cfg = cfg
        self.root = Path(cfg.root).expanduser()
        if not self.root.exists():
            raise InputError(f"{self.root}: data.root not found; check the path")
        self.stride = int(cfg.options.get("clip_stride", 1))
        if self.stride < 1:
            raise ConfigError(f"data.options.clip_stride must be >= 1, got {self.stride}")
        self.gamma = gamma_option(cfg.options.get("gamma", DEFAULT_GAMMA)) if cfg.options.get("linear") else None
        self.keep = set(cfg.options["sequences"]) if "sequences" in cfg.options else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Different (still reproducible) crops and flips for each epoch."""
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator | None:
        if not self.cfg.augment:
            return None
        return torch.Generator().manual_seed(training_seed(self.cfg.seed, index * 100003 + self.epoch, self.cfg.split))

    def _finish(self, item: dict, index: int, where, reverse_keys=()) -> dict:
        return augment(item, self._generator(index), crop=self.cfg.crop or None, reverse_keys=reverse_keys,
                       where=str(where))

    def _filter(self, names: dict) -> dict:
        if self.keep is None:
            return names
        missing = sorted(self.keep - set(names))
        if missing:
            raise InputError(f"{self.root}: sequence {missing[0]!r} (data.options.sequences) not found")
        return {k: v for k, v in names.items() if k in self.keep}


class PairedDataset(_Reader):
    """Sequences of (blurred, sharp) file pairs; subclasses implement ``discover()``."""

    layout = ""

    def __init__(self, cfg):
        super().__init__(cfg)
        sequences = self._filter(self.discover())
        self.sequences = [pairs for pairs in sequences.values() if pairs]
        if not self.sequences:
            raise InputError(f"{self.root}: no blurred/sharp pairs found; expected {self.layout}")
        if cfg.mode == "image":
            self.index = [(s, i) for s, pairs in enumerate(self.sequences) for i in range(len(pairs))]
        else:
            self.index = [(s, start) for s, pairs in enumerate(self.sequences)
                          for start in range(0, len(pairs) - cfg.frames + 1, self.stride)]
            if not self.index:
                longest = max(len(p) for p in self.sequences)
                raise ConfigError(f"{self.root}: no sequence has data.frames={cfg.frames} frames "
                                  f"(the longest has {longest}); lower data.frames")

    @abc.abstractmethod
    def discover(self) -> dict:
        """Sequence name -> list of (blurred, sharp) paths, per the source's layout."""

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        seq, start = self.index[index]
        pairs = self.sequences[seq]
        if self.cfg.mode == "image":
            blur, sharp = pairs[start]
            return self._finish({"blur": read_image(blur), "sharp": read_image(sharp)}, index, blur)
        window = pairs[start:start + self.cfg.frames]
        blur = stack_frames([read_image(b) for b, _ in window], [b for b, _ in window])
        sharp = stack_frames([read_image(s) for _, s in window], [s for _, s in window])
        return self._finish({"blur": blur, "sharp": sharp}, index, window[0][0], reverse_keys=("blur", "sharp"))


class GoProDataset(PairedDataset):
    layout = "root/{train,test}/<seq>/{blur,blur_gamma,sharp}/*.png"

    def discover(self) -> dict:
        split = _require_dir(self.root / self.cfg.split, self.layout)
        sequences = {}
        for seq in _sorted_dirs(split):
            blur_dir = seq / self.cfg.blur_folder
            if not blur_dir.is_dir():
                raise InputError(f"{blur_dir}: missing (data.blur_folder={self.cfg.blur_folder!r}); "
                                 f"GoPro sequences have blur/, blur_gamma/ and sharp/")
            sequences[seq.name] = match_pairs(blur_dir, _require_dir(seq / "sharp", self.layout))
        return sequences


class FlatDataset(PairedDataset):
    layout = "root/{train,test}/{input,target} or root/{train,test}/{blur,sharp}"

    def discover(self) -> dict:
        base = self.root / self.cfg.split if (self.root / self.cfg.split).is_dir() else self.root
        for blur_name, sharp_name in (("input", "target"), ("blur", "sharp")):
            if (base / blur_name).is_dir() and (base / sharp_name).is_dir():
                return {base.name: match_pairs(base / blur_name, base / sharp_name)}
        raise InputError(f"{base}: no input/target or blur/sharp folders; expected {self.layout}")


class DVDDataset(PairedDataset):
    layout = "root/quantitative_datasets/<seq>/{input,GT}/*.jpg"

    def discover(self) -> dict:
        base = self.root / "quantitative_datasets" if (self.root / "quantitative_datasets").is_dir() else self.root
        test = set(self.cfg.options.get("test_sequences", DVD_TEST_SEQUENCES))
        if self.cfg.split not in ("train", "test", "all"):
            raise ConfigError(f"data.split for dvd must be train, test or all, got {self.cfg.split!r}")
        sequences = {}
        for seq in _sorted_dirs(base):
            if (self.cfg.split == "test") != (seq.name in test) and self.cfg.split != "all":
                continue
            if (seq / "input").is_dir() and (seq / "GT").is_dir():
                sequences[seq.name] = match_pairs(seq / "input", seq / "GT")
        return sequences


class REDSDataset(PairedDataset):
    layout = "root/{split}_blur/<seq>/*.png and root/{split}_sharp/<seq>/*.png"

    def discover(self) -> dict:
        blur_root = _require_dir(self.root / f"{self.cfg.split}_blur", self.layout)
        sharp_root = _require_dir(self.root / f"{self.cfg.split}_sharp", self.layout)
        return {seq.name: match_pairs(seq, _require_dir(sharp_root / seq.name, self.layout))
                for seq in _sorted_dirs(blur_root)}


def _pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    for blur_name, sharp_name in PAIR_FOLDERS:
        if (folder / blur_name).is_dir() and (folder / sharp_name).is_dir():
            return folder / blur_name, folder / sharp_name
    return None


class FolderDataset(PairedDataset):
    layout = "root/{blur,sharp} (or input/target, input/GT, lq/gt), or root/<seq>/{blur,sharp}"

    def discover(self) -> dict:
        base = self.root / self.cfg.split if (self.root / self.cfg.split).is_dir() else self.root
        found = _pair_dirs(base)
        if found:
            return {base.name: match_pairs(*found)}
        sequences = {}
        for seq in _sorted_dirs(base):
            found = _pair_dirs(seq)
            if found:
                sequences[seq.name] = match_pairs(*found)
        return sequences


# Sharp-only clips, blurred on the fly -------------------------------------------------------


class _FramesClip:
    def __init__(self, paths: list[Path], name: str):
        self.paths, self.name = paths, name

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, start: int, count: int) -> torch.Tensor:
        paths = self.paths[start:start + count]
        return stack_frames([read_image(p) for p in paths], paths)


class _ArrayClip:
    """A clip stored as an ``(F, H, W, 3)`` array (``.npy`` memory-mapped, ``.npz`` loaded)."""

    def __init__(self, path: Path, array: np.ndarray, name: str):
        self.path, self.array, self.name = path, array, name

    def __len__(self) -> int:
        return self.array.shape[0]

    def read(self, start: int, count: int) -> torch.Tensor:
        frames = np.asarray(self.array[start:start + count])
        if frames.dtype == np.uint8:
            frames = frames.astype(np.float32) / 255.0
        elif np.issubdtype(frames.dtype, np.floating):
            frames = frames.astype(np.float32)
            if frames.max() > 1.0 + 1e-3:     # stored as 0..255 floats
                frames = frames / 255.0
        else:
            raise InputError(f"{self.path}: clip arrays must be uint8 or float, got {frames.dtype}")
        return torch.from_numpy(np.ascontiguousarray(frames.clip(0, 1))).permute(0, 3, 1, 2).contiguous()


def _load_arrays(path: Path) -> list[_ArrayClip]:
    try:
        if path.suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                key = next((k for k in ("frames", "video", "clip", "arr_0") if k in keys), keys[0] if keys else None)
                if key is None:
                    raise InputError(f"{path}: the .npz archive is empty")
                array = archive[key]
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable NumPy array ({exc})") from None
    if array.ndim == 4 and array.shape[-1] == 3:
        return [_ArrayClip(path, array, path.stem)]
    if array.ndim == 5 and array.shape[-1] == 3:
        return [_ArrayClip(path, array[i], f"{path.stem}_{i}") for i in range(array.shape[0])]
    raise InputError(f"{path}: clip arrays must be shaped (F, H, W, 3) or (N, F, H, W, 3), got {array.shape}")


class _VideoClip:
    """A video file; its length is probed once, frames are decoded up to the window's end."""

    def __init__(self, path: Path):
        import av

        self.path, self.name = path, path.stem
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise InputError(f"{path}: has no video stream")
                stream = container.streams.video[0]
                self.length = stream.frames or sum(1 for _ in container.decode(stream))
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: not a readable video ({exc})") from None

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, count: int) -> torch.Tensor:
        from .io import read_video

        frames, _ = read_video(self.path, max_frames=start + count)
        if len(frames) < start + count:
            raise InputError(f"{self.path}: has {len(frames)} decodable frames, fewer than its header's {self.length}")
        return frames[start:start + count]


class SharpClipDataset(_Reader):
    """Clips of sharp frames blurred on the fly by averaging ``data.subframes`` frames."""

    modes = ("image", "video", "exposure")
    layout = ""

    def __init__(self, cfg):
        super().__init__(cfg)
        clips = self.discover()
        if self.keep is not None:
            clips = [c for c in clips if c.name in self.keep]
        self.clips = clips
        if not self.clips:
            raise InputError(f"{self.root}: no clips found; expected {self.layout}")
        self.window = cfg.subframes
        self.span = self.window * (cfg.frames if cfg.mode == "video" else 1)
        self.index = [(c, start) for c, clip in enumerate(self.clips)
                      for start in range(0, len(clip) - self.span + 1, self.stride)]
        if not self.index:
            longest = max(len(c) for c in self.clips)
            raise ConfigError(f"{self.root}: mode {cfg.mode!r} needs clips of {self.span} frames "
                              f"(data.subframes{' x data.frames' if cfg.mode == 'video' else ''}), the longest has "
                              f"{longest}; lower data.subframes or data.frames")

    @abc.abstractmethod
    def discover(self) -> list:
        """The clips of the source's layout (objects with ``len`` and ``read(start, count)``)."""

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        clip_index, start = self.index[index]
        clip = self.clips[clip_index]
        frames = clip.read(start, self.span)
        where = getattr(clip, "path", None) or clip.name
        if self.cfg.mode == "video":
            frames = self._finish({"frames": frames}, index, where, reverse_keys=("frames",))["frames"]
            groups = frames.view(self.cfg.frames, self.window, *frames.shape[1:])
            return {"blur": temporal_average(groups, self.gamma, dim=1).contiguous(),
                    "sharp": groups[:, middle_index(self.window)].contiguous()}
        frames = self._finish({"frames": frames}, index, where)["frames"]
        blur = temporal_average(frames, self.gamma, dim=0)
        sharp = frames[middle_index(self.window)].clone()
        if self.cfg.mode == "exposure":
            return {"blur": blur, "frames": frames, "sharp": sharp}
        return {"blur": blur, "sharp": sharp, "subframes": frames}


def _split_base(root: Path, split: str) -> Path:
    for candidate in (root / split, root / f"video_{split}"):
        if candidate.is_dir():
            return candidate
    return root


def _frame_folders_and_arrays(base: Path) -> list:
    clips = []
    for entry in natural_sorted(base.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and any(is_image(p) for p in entry.iterdir()):
            clips.append(_FramesClip(list_images(entry), entry.name))
        elif entry.is_file() and entry.suffix in (".npy", ".npz"):
            clips.extend(_load_arrays(entry))
    return clips


class BAIRDataset(SharpClipDataset):
    layout = "root[/split]/<clip>/*.png or root[/split]/*.npy|*.npz arrays (F, H, W, 3)"

    def discover(self) -> list:
        return _frame_folders_and_arrays(_split_base(self.root, self.cfg.split))


class CLEVRERDataset(SharpClipDataset):
    layout = "root[/split or /video_split]/**/*.mp4"

    def discover(self) -> list:
        base = _split_base(self.root, self.cfg.split)
        return [_VideoClip(p) for p in natural_sorted(base.rglob("*.mp4"))]


class VideoDataset(SharpClipDataset):
    layout = "a video file, a folder of frames, or a folder of videos"

    def discover(self) -> list:
        if self.root.is_file():
            if not is_video(self.root):
                raise InputError(f"{self.root}: not a video file; expected {self.layout}")
            return [_VideoClip(self.root)]
        images = [p for p in self.root.iterdir() if p.is_file() and is_image(p)]
        if images:
            return [_FramesClip(list_images(self.root), self.root.name)]
        videos = [p for p in natural_sorted(self.root.iterdir()) if p.is_file() and is_video(p)]
        return [_VideoClip(p) for p in videos] + _frame_folders_and_arrays(self.root)
