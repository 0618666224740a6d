"""The check of a run's images before any cell starts: a bad image is then one error naming it (exit 2, nothing
written), not a `failed` record per method and seed that reads like the method's failure. (The hubs check their
checkpoint files themselves: `Hub.check`.)

The check builds the decode-once cache (`tasks.image_cache`) that the cells then read, so a prepared dataset is
not decoded again; the cache is keyed by each image's path, size and modification time, so a second run costs
the stat of each file, and a changed image is decoded (checked) again.
"""

from __future__ import annotations

from hubbench.progress import note


def check_images(cells) -> None:
    """Decode every image of the selected tasks that read files, at the cells' protocol (as they will)."""
    for cell in {cell.task: cell for cell in cells}.values():
        task = cell.make_task()
        if not task.external_data:
            continue
        for split in task.splits:
            images = task.pixels(split)  # decodes into the cache, or finds it there
            note(f"{cell.task}/{split}: {len(images)} images decode")
