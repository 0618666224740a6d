"""The checks of a run's inputs before any cell starts (`runner.check_run` makes them for every caller of
`run_cells`): a missing or malformed dataset, a missing or bad checkpoint file, a bad image is then one error naming
it (exit 2, nothing written), not a `failed` record per method and seed that reads like the method's failure.

The image check builds the decode-once cache (`tasks.image_cache`) that the cells then read, so a prepared dataset is
not decoded again; the cache is keyed by each image's path, size and modification time, so a second run costs
the stat of each file, and a changed image is decoded (checked) again.
"""

from __future__ import annotations

from hubbench.hubs.base import get_hub
from hubbench.progress import note
from hubbench.tasks.base import TASKS


def check_data(cells) -> None:
    """Read every selected real dataset now: a missing or malformed one, or one with an empty split, is then
    one error before any cell runs or any hub weights load, not a failed cell per method and seed. (The
    in-memory tasks' data are fixed by their code, not by the user: they are made when a cell needs them.)"""
    for name in dict.fromkeys(cell.task for cell in cells):
        task = TASKS.get(name)
        if task.external_data:
            task().splits  # noqa: B018 (reading is the check; the splits stay cached for this process)


def review_protocols(cells) -> list[str]:
    """How each task's protocol was chosen and what looks wrong with it, a line each, for a run to say before its
    first cell (a protocol a task refuses is bad input, raised here)."""
    return [f"{task}: {line}" for task, protocol in dict.fromkeys((cell.task, cell.protocol) for cell in cells)
            for line in TASKS.get(task).review(protocol)]


def check_weights(cells) -> None:
    """One error naming every missing checkpoint file of the hubs the cells use (not a failed record per cell);
    the hubs check their files themselves (`Hub.check`)."""
    for name in dict.fromkeys(cell.hub for cell in cells):
        get_hub(name).check()


def check_images(cells) -> None:
    """Decode every image of the selected tasks that read files, at the cells' protocol (as they will)."""
    for cell in {cell.task: cell for cell in cells}.values():
        task = cell.make_task()
        if not task.external_data:
            continue
        for split in task.splits:
            images = task.pixels(split)  # decodes into the cache, or finds it there
            note(f"{cell.task}/{split}: {len(images)} images decode")
