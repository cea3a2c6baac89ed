"""Video files (``video:PATH``): frames of clips, ``reference`` = another frame of the same clip.

PATH is one video file or a folder searched recursively for videos. Every ``stride``-th frame is an
item; its ``reference`` is a random other frame of the same video at most ``max_gap`` frames away
(PPL's "reference frame" reading of the paper; the official code only ever uses the same frame).
Frames are read with ``cv2.VideoCapture``; one capture per video is kept open in each process.

With ``crops="motion"`` (a fixed camera filming a moving subject) each video is scanned once, in
order, by the background subtractor of :mod:`ppl_edge.motion` (the one ``ppl-edge live --crops
motion`` uses): items are the square crops around the largest moving region, each with the
subtractor's foreground ``mask`` and a ``reference`` frame cut with the same box (the static
background then matches and the subject moves inside it). A ``<video>.labels.npz`` ground-truth
file beside a video (:mod:`ppl_edge.synth.scene`) adds ``keypoints`` / ``visible`` to the
``train_reg`` and ``test`` items.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import VIDEO_SUFFIXES
from ppl_edge.flow import dense_flow
from ppl_edge.motion import MOTION_METHODS, Box, MotionCrops, crop_square, frame_to_crop
from ppl_edge.synth.scene import SceneLabels, labels_path, read_scene_labels
from ppl_edge.train.data.common import (
    SkippingDataset,
    UnreadableItem,
    check_split,
    default_flip,
    flow_to_tensor,
    image_to_tensor,
    keypoints_to_tensor,
    random_flip,
    resize,
)
from ppl_edge.train.data.folder import pick_reference
from ppl_edge.train.data.video_files import (
    _frame_count,
    list_videos,
    pick_gapped_reference,
    scan_motion,
)

log = logging.getLogger(__name__)

_INHERITED_CAPTURES: list[dict] = []  # see VideoDataset.read_raw
CROP_MODES = ("full", "motion")


class VideoDataset(SkippingDataset):
    """Frames of one or more videos, each with a nearby reference frame.

    Items: ``image`` (3, H, W) float32 RGB in [-1, 1] and ``reference`` (3, H, W), another frame of
    the same video; with ``crops="motion"`` also ``mask`` (1, H, W) float32 in {0, 1}, and, in the
    ``train_reg`` / ``test`` splits of videos with a ``<video>.labels.npz`` beside them,
    ``keypoints`` (J, 2) xy in [-1, 1] of the crop and ``visible`` (J,) bool (False outside it).

    Args:
        root: a video file or a folder of videos.
        img_size: H = W of the returned images.
        split: ``train`` (random flips by default), ``train_reg`` or ``test``. With
            ``crops="full"`` every split reads every frame; with ``crops="motion"`` ``train`` reads
            every frame, ``train_reg`` the first ``1 - test_fraction`` of each video's frames and
            ``test`` the rest (fitted and scored frames never coincide).
        seed: unused (reference frames and flips draw from torch's RNG).
        flip: flip image, reference, mask and keypoints together; default True in the train split.
        max_gap: largest frame distance between ``image`` and ``reference``.
        stride: use every ``stride``-th frame as an item.
        crops: ``full`` (whole frames resized to img_size x img_size) or ``motion`` (a fixed
            camera: square crops around the largest moving region, as ``ppl-edge live --crops
            motion`` cuts them; frames with no moving region are not items).
        min_gap: smallest frame distance between ``image`` and ``reference``; default 4 with
            ``crops="motion"`` (a visible move inside the shared box), 1 with ``crops="full"``.
        warmup: with ``crops="motion"``, the first ``warmup`` frames of each video are not items
            (the background model is still settling).
        motion_method: background subtractor, ``mog2`` or ``knn``.
        motion_history: frames the background model remembers; the first ``motion_history``
            frames are read once beforehand to learn the background.
        test_fraction: with ``crops="motion"``, the share of each video's last frames that form
            the ``test`` split.
        cache_frames: with ``crops="motion"``, keep every frame JPEG-encoded in memory during the
            scan (about 10-30 kB a frame at 256x192) and serve items from it: a random item needs
            two frames, and seeking in a compressed video costs tens of milliseconds each.
        flow_gap: > 0 also gives ``near``, the frame ``flow_gap`` frames after ``image`` (before
            it at a video's end) cut with the same box, and ``flow`` (2, H, W), the optical flow
            from ``image`` to it in [-1, 1] units (:func:`ppl_edge.flow.dense_flow`), for
            ``w_flow``; rounded to whole frames.

    Raises:
        PplEdgeError: PATH does not exist, no readable video is found, no frame moves (motion),
            or an option is out of range.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 128,
        split: str = "train",
        seed: int = 0,
        flip: bool | None = None,
        max_gap: int = 8,
        stride: int = 1,
        crops: str = "full",
        min_gap: int | None = None,
        warmup: int = 30,
        motion_method: str = "mog2",
        motion_history: int = 200,
        test_fraction: float = 0.2,
        cache_frames: bool = True,
        flow_gap: float = 0,
    ) -> None:
        super().__init__()
        paths = list_videos(root)
        if crops not in CROP_MODES:
            raise PplEdgeError(
                f"video dataset: crops must be one of {list(CROP_MODES)}, got {crops!r}"
            )
        self.crops = crops
        self.min_gap = int(min_gap if min_gap is not None else 4 if crops == "motion" else 1)
        if stride < 1 or max_gap < 1 or not 1 <= self.min_gap <= max_gap:
            raise PplEdgeError(
                f"video dataset: need stride >= 1 and 1 <= min_gap <= max_gap, got "
                f"stride={stride}, min_gap={self.min_gap}, max_gap={max_gap}"
            )
        if warmup < 0 or motion_history < 1 or not 0.0 < test_fraction < 1.0:
            raise PplEdgeError(
                f"video dataset: need warmup >= 0, motion_history >= 1 and "
                f"0 < test_fraction < 1, got warmup={warmup}, "
                f"motion_history={motion_history}, test_fraction={test_fraction}"
            )
        if motion_method not in MOTION_METHODS:
            raise PplEdgeError(
                f"video dataset: motion_method must be one of "
                f"{list(MOTION_METHODS)}, got {motion_method!r}"
            )
        if flow_gap < 0:
            raise PplEdgeError(f"video dataset: need flow_gap >= 0 frames, got {flow_gap}")
        self.flow_gap = int(round(flow_gap))
        self.img_size = int(img_size)
        self.split = check_split(split)
        self.flip = default_flip(split, flip)
        self.max_gap = int(max_gap)
        self.videos: list[Path] = []
        self.frame_counts: list[int] = []
        self.items: list[tuple[int, int]] = []  # (video index, frame index)
        self.boxes: list[Box] = []  # motion: the crop of each item, frame pixels
        self._mask_bits: list[np.ndarray] = []  # motion: packed (img_size, img_size) masks
        self._labels: list[tuple[np.ndarray, np.ndarray] | None] = []  # (keypoints, visible)
        self.cache_frames = bool(cache_frames) and crops == "motion"
        self._frames: list[list[np.ndarray]] = []  # motion + cache: JPEG bytes per frame
        if crops == "full":
            self._add_full_videos(paths, stride)
        else:
            detector = MotionCrops(
                method=motion_method, history=int(motion_history), hold=0, fallback="none"
            )
            self._add_motion_videos(paths, detector, int(warmup), stride, float(test_fraction))
        if not self.items and crops == "motion" and self.videos:
            raise PplEdgeError(
                f"video dataset: no frame of {root} after the first {warmup} has a "
                f"moving subject; crops='motion' expects a fixed camera filming "
                f"one"
            )
        if not self.items:
            raise PplEdgeError(
                f"video dataset: no readable video under {root} (found {len(paths)} "
                f"candidate files with suffixes {', '.join(VIDEO_SUFFIXES)})"
            )
        self._captures: dict[int, tuple[cv2.VideoCapture, int]] = {}
        self._captures_pid = os.getpid()  # the process the captures belong to

    def _add_full_videos(self, paths: list[Path], stride: int) -> None:
        """Every ``stride``-th frame of each readable video is an item."""
        for path in paths:
            count = _frame_count(path)
            if count == 0:
                self.skipped += 1
                log.warning("skipping unreadable video %s", path)
                continue
            self.items += [(len(self.videos), f) for f in range(0, count, stride)]
            self.videos.append(path)
            self.frame_counts.append(count)

    def _add_motion_videos(
        self,
        paths: list[Path],
        detector: MotionCrops,
        warmup: int,
        stride: int,
        test_fraction: float,
    ) -> None:
        """Scan each video with the background subtractor; keep its split of moving frames."""
        gt = [labels_path(p).is_file() for p in paths]
        use_labels = self.split != "train" and any(gt)
        if use_labels and not all(gt):
            log.warning(
                "only %d of %d videos have a %s file; items carry no keypoints",
                sum(gt),
                len(gt),
                labels_path("<video>").name,
            )
            use_labels = False
        for path in paths:
            cache: list | None = [] if self.cache_frames else None
            frames, boxes, masks, count = scan_motion(
                path, detector, self.img_size, warmup, stride, cache
            )
            if count == 0:
                self.skipped += 1
                log.warning("skipping unreadable video %s", path)
                continue
            cut = int(round(count * (1.0 - test_fraction)))
            keep = [
                i
                for i, f in enumerate(frames)
                if self.split == "train" or (f < cut) == (self.split == "train_reg")
            ]
            video = len(self.videos)
            self.items += [(video, frames[i]) for i in keep]
            self.boxes += [boxes[i] for i in keep]
            self._mask_bits += [masks[i] for i in keep]
            self.videos.append(path)
            self.frame_counts.append(count)
            self._frames.append(cache or [])
            self._labels.append(self._read_labels(path, count) if use_labels else None)
            log.info(
                "%s: %d of %d frames with a moving subject (%s split: %d items)",
                path.name,
                len(frames),
                count,
                self.split,
                len(keep),
            )

    def _read_labels(self, path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth of one video; the first labelled video sets the joint layout."""
        labels: SceneLabels = read_scene_labels(labels_path(path))
        if labels.count < count:
            raise PplEdgeError(
                f"{labels_path(path)} holds {labels.count} frames but {path} has "
                f"{count}; expected one row per frame"
            )
        if not hasattr(self, "swap_pairs"):
            self.category = labels.category
            self.joint_names, self.edges = labels.joint_names, labels.edges
            self.swap_pairs = labels.swap_pairs
        elif labels.joint_names != self.joint_names:
            raise PplEdgeError(
                f"{labels_path(path)} has joints {list(labels.joint_names)}; "
                f"expected {list(self.joint_names)} like the first labelled video"
            )
        return labels.keypoints, labels.visible

    @property
    def has_labels(self) -> bool:
        """True when every item carries ``keypoints`` and ``visible``."""
        return bool(self._labels) and all(g is not None for g in self._labels)

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_captures"] = {}  # captures do not cross process boundaries
        return state

    def read_raw(self, video: int, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR of one frame at the video's resolution (raises UnreadableItem)."""
        if self.cache_frames and frame < len(self._frames[video]):
            img = cv2.imdecode(self._frames[video][frame], cv2.IMREAD_COLOR)
            if img is None:
                raise UnreadableItem(f"cannot decode cached frame {frame} of {self.videos[video]}")
            return img
        if self._captures_pid != os.getpid():
            # a forked DataLoader worker inherits the parent's open captures, whose decoder
            # threads did not survive the fork: reading or even releasing one hangs. Keep them
            # referenced (never destroyed in this process) and open this process's own.
            _INHERITED_CAPTURES.append(self._captures)
            self._captures, self._captures_pid = {}, os.getpid()
        cap, position = self._captures.get(video, (None, -1))
        if cap is None:
            cap = cv2.VideoCapture(str(self.videos[video]))
            position = 0
        if position != frame:  # seek only when not reading sequentially
            cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, img = cap.read()
        self._captures[video] = (cap, frame + 1)
        if not ok or img is None:
            self._captures.pop(video)[0].release()
            raise UnreadableItem(f"cannot decode frame {frame} of {self.videos[video]}")
        return img

    def read_frame(self, video: int, frame: int) -> np.ndarray:
        """(img_size, img_size, 3) uint8 BGR of one whole frame, resized (raises UnreadableItem)."""
        return resize(self.read_raw(video, frame), self.img_size)

    def mask(self, index: int) -> np.ndarray:
        """(img_size, img_size) bool foreground mask of motion item ``index`` (before flips)."""
        n = self.img_size * self.img_size
        return np.unpackbits(self._mask_bits[index], count=n).reshape(self.img_size, -1) > 0

    def _reference(self, video: int, frame: int) -> int:
        count = self.frame_counts[video]
        if self.min_gap == 1:
            return pick_reference(frame, count, self.max_gap)
        return pick_gapped_reference(frame, count, self.min_gap, self.max_gap)

    def _cut(self, index: int, frame: int) -> np.ndarray:
        """(img_size, img_size, 3) uint8 BGR: ``frame`` of item ``index``'s video, resized whole
        (``crops="full"``) or cut with the item's box (``motion``)."""
        video = self.items[index][0]
        if self.crops == "full":
            return self.read_frame(video, frame)
        return crop_square(self.read_raw(video, frame), self.boxes[index], self.img_size)

    def _near(self, video: int, frame: int) -> int:
        """The frame ``flow_gap`` after ``frame`` (before it at the video's end)."""
        after = frame + self.flow_gap
        return after if after < self.frame_counts[video] else max(frame - self.flow_gap, 0)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        video, frame = self.items[index]
        ref = self._reference(video, frame)
        image = self._cut(index, frame)
        item = {
            "image": image_to_tensor(image),
            "reference": image_to_tensor(self._cut(index, ref)),
        }
        if self.flow_gap > 0:
            near = self._cut(index, self._near(video, frame))
            item["near"] = image_to_tensor(near)
            item["flow"] = flow_to_tensor(dense_flow(image, near), *image.shape[1::-1])
        if self.crops == "full":
            return random_flip(item, self.flip)
        box, size = self.boxes[index], self.img_size
        item["mask"] = torch.from_numpy(self.mask(index).astype(np.float32))[None]
        labels = self._labels[video]
        if labels is not None:
            kp = frame_to_crop(labels[0][frame], box, size)  # (J, 2) crop pixels
            inside = np.all((kp >= -0.5) & (kp <= size - 0.5), axis=1)
            item["keypoints"] = keypoints_to_tensor(kp, size, size)
            item["visible"] = torch.from_numpy(labels[1][frame] & inside)
        return random_flip(item, self.flip, getattr(self, "swap_pairs", ()))

    def close(self) -> None:
        """Release the open captures."""
        for cap, _ in self._captures.values():
            cap.release()
        self._captures.clear()
