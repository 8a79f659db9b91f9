"""EvoLink's Seedance 2.0 contract as data: models, enums and media limits.

The single source of truth for validation, the sandbox and the docs' limits table.
Numbers follow EvoLink's current published contract (``PROVIDER.md``); where the older
request document differs, the difference is noted beside the value.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_MODELS",
    "ASPECT_RATIOS",
    "AUDIO",
    "CALLBACK_URL_MAX",
    "DEFAULTS",
    "DURATION_MAX",
    "DURATION_MIN",
    "FAMILIES",
    "IMAGE",
    "METADATA_MAX_BYTES",
    "MODELS",
    "MODEL_PARAMS_FIELDS",
    "PROMPT_MAX_CJK_CHARS",
    "PROMPT_MAX_WORDS",
    "QUALITIES",
    "REQUEST_BODY_MAX",
    "STANDARD_QUALITIES",
    "VIDEO",
    "MediaLimits",
    "ModelSpec",
    "frame_size",
]

MB = 1024 * 1024
REQUEST_BODY_MAX = 64 * MB
METADATA_MAX_BYTES = 16 * 1024  # ours: a job's metadata, as JSON
CALLBACK_URL_MAX = 2048
PROMPT_MAX_CJK_CHARS = 500
PROMPT_MAX_WORDS = 1000
DURATION_MIN, DURATION_MAX = 4, 15
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "adaptive")
STANDARD_QUALITIES = ("480p", "720p", "1080p", "4k")
FAST_QUALITIES = ("480p", "720p")
MINI_QUALITIES = ("480p", "720p")
FAMILIES = ("standard", "fast", "mini")  # model families: qualities and prices differ by family
QUALITIES: dict[str, tuple[str, ...]] = {"standard": STANDARD_QUALITIES, "fast": FAST_QUALITIES,
                                         "mini": MINI_QUALITIES}
MODEL_PARAMS_FIELDS = ("web_search",)  # keys of text-to-video's ``model_params`` object (booleans)

DEFAULTS: dict[str, object] = {
    "duration": 5,
    "quality": "720p",
    "aspect_ratio": "adaptive",  # the request document said 16:9; current docs say adaptive
    "generate_audio": True,
    "content_filter": True,
}


@dataclass(frozen=True, slots=True)
class MediaLimits:
    kind: str
    array: str
    extensions: tuple[str, ...]
    content_types: tuple[str, ...]
    max_count: int
    max_bytes: int
    min_side: int = 0
    max_side: int = 0
    min_aspect: float = 0.0
    max_aspect: float = 0.0
    min_seconds: float = 0.0
    max_seconds: float = 0.0
    max_total_seconds: float = 0.0
    min_pixels: int = 0
    max_pixels: int = 0
    min_fps: float = 0.0
    max_fps: float = 0.0


IMAGE = MediaLimits(
    kind="image",
    array="image_urls",
    extensions=(".jpeg", ".jpg", ".png", ".webp"),
    content_types=("image/jpeg", "image/png", "image/webp"),
    max_count=9,
    max_bytes=30 * MB,
    min_side=300,
    max_side=6000,
    min_aspect=0.4,
    max_aspect=2.5,
)
VIDEO = MediaLimits(
    kind="video",
    array="video_urls",
    extensions=(".mp4", ".mov"),
    content_types=("video/mp4", "video/quicktime"),
    max_count=3,
    max_bytes=50 * MB,
    min_side=300,
    max_side=6000,
    min_aspect=0.4,
    max_aspect=2.5,
    min_seconds=2.0,
    max_seconds=15.0,
    max_total_seconds=15.0,
    min_pixels=409_600,
    max_pixels=2_086_876,  # the request document capped at 927,408 (720p)
    min_fps=24.0,
    max_fps=60.0,
)
AUDIO = MediaLimits(
    kind="audio",
    array="audio_urls",
    extensions=(".wav", ".mp3"),
    content_types=("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3"),
    max_count=3,
    max_bytes=15 * MB,
    min_seconds=2.0,
    max_seconds=15.0,
    max_total_seconds=15.0,
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one model id accepts."""

    name: str
    mode: str  # text | image | reference
    family: str  # standard | fast | mini (see FAMILIES)
    qualities: tuple[str, ...]
    media: tuple[MediaLimits, ...]
    min_images: int = 0
    max_images: int = 0
    extra_fields: tuple[str, ...] = ()

    @property
    def fast(self) -> bool:
        return self.family == "fast"

    @property
    def fields(self) -> frozenset[str]:
        base = {"model", "prompt", "duration", "quality", "aspect_ratio", "generate_audio",
                "content_filter", "callback_url"}
        return frozenset(base | {m.array for m in self.media} | set(self.extra_fields))


def _specs() -> dict[str, ModelSpec]:
    specs: list[ModelSpec] = []
    for family in FAMILIES:
        prefix = "seedance-2.0-" if family == "standard" else f"seedance-2.0-{family}-"
        qualities = QUALITIES[family]
        text_fields = () if family == "mini" else ("model_params",)  # mini text-to-video takes no model_params
        specs += [
            ModelSpec(f"{prefix}text-to-video", "text", family, qualities, (), extra_fields=text_fields),
            ModelSpec(f"{prefix}image-to-video", "image", family, qualities, (IMAGE,),
                      min_images=1, max_images=2),
            ModelSpec(f"{prefix}reference-to-video", "reference", family, qualities,
                      (IMAGE, VIDEO, AUDIO), max_images=9),
        ]
    return {s.name: s for s in specs}


MODELS: dict[str, ModelSpec] = _specs()
ALL_MODELS: tuple[str, ...] = tuple(MODELS)

# Output frame sizes per quality and aspect ratio, from EvoLink's pixel table.
_FRAMES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {"16:9": (864, 496), "4:3": (752, 560), "1:1": (640, 640), "3:4": (560, 752),
             "9:16": (496, 864), "21:9": (992, 432)},
    "720p": {"16:9": (1280, 720), "4:3": (1112, 834), "1:1": (960, 960), "3:4": (834, 1112),
             "9:16": (720, 1280), "21:9": (1470, 630)},
    "1080p": {"16:9": (1920, 1080), "4:3": (1664, 1248), "1:1": (1440, 1440),
              "3:4": (1248, 1664), "9:16": (1080, 1920), "21:9": (2206, 946)},
    "4k": {"16:9": (3840, 2160), "4:3": (3326, 2494), "1:1": (2880, 2880), "3:4": (2494, 3326),
           "9:16": (2160, 3840), "21:9": (4398, 1886)},
}


def frame_size(quality: str, aspect_ratio: str) -> tuple[int, int]:
    """Width and height EvoLink renders for a quality and aspect ratio (adaptive → 16:9)."""
    table = _FRAMES.get(quality, _FRAMES["720p"])
    return table.get(aspect_ratio, table["16:9"])
