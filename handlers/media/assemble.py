"""Several MP4 files joined, in order, into one.

When every part has the same video (codec, size, pixel format, frame rate, codec headers) and the same
audio (codec, rate, channels, headers) or none, the packets are copied as they are (``remux``), each
part's timestamps shifted by the length of the parts before it. Otherwise every part is decoded and
encoded again (``reencode``) as H.264 (yuv420p) at the first part's size and frame rate, with AAC audio
when any part has audio: a part without audio gets silence of its length, and each part's audio is cut or
padded to its video's length so that the picture and the sound stay together. Either way the joined
video lasts the sum of the parts, within a frame each.

PyAV is imported inside the functions, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.base.errors import NotFound
from handlers.media.facts import MediaFacts, MediaSource, UnplayableOutput, open_media, read_facts
from handlers.media.ranged import blob_source

if TYPE_CHECKING:
    import av.audio.stream
    import av.container
    import av.video.stream

    from handlers.ports import BlobStore

__all__ = ["REENCODE", "REMUX", "Assembly", "assemble", "assemble_blobs"]

REMUX = "remux"
REENCODE = "reencode"
_X264_OPTIONS = {"preset": "veryfast", "crf": "20"}
_AUDIO_RATE = 48_000


@dataclass(frozen=True, slots=True)
class Assembly:
    """What :func:`assemble` did: ``method`` (``remux`` or ``reencode``), why it re-encoded, and the result's facts."""

    method: str
    reason: str | None
    facts: MediaFacts
    parts: tuple[MediaFacts, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "reason": self.reason, "facts": self.facts.as_dict(),
                "parts": [part.as_dict() for part in self.parts]}


def assemble(sources: Sequence[MediaSource], target: Path) -> Assembly:
    """Join ``sources`` (each a playable MP4) in order into ``target``; ``ValueError`` for no sources.

    A part that is not a playable MP4 raises :class:`~handlers.media.facts.UnplayableOutput` naming it.
    """
    if not sources:
        raise ValueError("nothing to assemble: no sources")
    parts = tuple(_checked(index, source) for index, source in enumerate(sources))
    reason = _mismatch(sources)
    if reason is None:
        try:
            _remux(sources, target)
        except _Overlap as exc:
            reason = str(exc)
            for source in sources:
                _rewind(source)
    if reason is not None:
        _reencode(sources, target, parts)
    return Assembly(REMUX if reason is None else REENCODE, reason, read_facts(target), parts)


def assemble_blobs(blobs: BlobStore, keys: Sequence[str], target: Path) -> Assembly:
    """:func:`assemble` the objects at ``keys``: read from their files where the store keeps them on this
    machine, else through byte ranges. ``NotFound`` names a key that holds nothing."""
    sources = []
    for key in keys:
        stored = blobs.head(key)
        if stored is None:
            raise NotFound(f"no object at {key!r} to assemble")
        sources.append(blob_source(blobs, key, stored.size))
    return assemble(sources, target)


def _checked(index: int, source: MediaSource) -> MediaFacts:
    try:
        with open_media(source) as media:
            facts = media.facts
    except UnplayableOutput as exc:
        raise UnplayableOutput(f"part {index}: {exc.message}") from exc
    _rewind(source)
    return facts


def _rewind(source: MediaSource) -> None:
    if not isinstance(source, str | Path):
        source.seek(0)


# --- deciding ------------------------------------------------------------------------------------

def _mismatch(sources: Sequence[MediaSource]) -> str | None:
    """Why the parts cannot be copied as they are, or ``None`` when they can."""
    import av

    signatures = []
    for source in sources:
        with av.open(_openable(source), mode="r") as container:
            signatures.append(_signature(container))
        _rewind(source)
    first = signatures[0]
    for index, signature in enumerate(signatures[1:], start=1):
        for name, value in signature.items():
            if value != first[name]:
                return f"part {index} differs from part 0 in {name}"
    return None


def _signature(container: av.container.InputContainer) -> dict[str, Any]:
    video = container.streams.video[0]
    context = video.codec_context
    signature: dict[str, Any] = {
        "video codec": context.name, "size": (context.width, context.height), "pixel format": context.pix_fmt,
        "frame rate": video.average_rate, "video codec headers": bytes(context.extradata or b""),
        "audio": bool(container.streams.audio)}
    if container.streams.audio:
        audio = container.streams.audio[0].codec_context
        signature |= {"audio codec": audio.name, "sample rate": audio.sample_rate,
                      "channels": audio.channels, "audio codec headers": bytes(audio.extradata or b"")}
    return signature


def _openable(source: MediaSource) -> Any:
    return str(source) if isinstance(source, str | Path) else source


# --- remux ---------------------------------------------------------------------------------------

class _Overlap(Exception):
    """A part's video packets would go back in time once shifted: copying cannot join them."""


def _remux(sources: Sequence[MediaSource], target: Path) -> None:
    import av

    with av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as out:
        with av.open(_openable(sources[0]), mode="r") as first:
            video_out = out.add_stream_from_template(first.streams.video[0], opaque=True)
            audio_out = out.add_stream_from_template(first.streams.audio[0]) if first.streams.audio else None
        _rewind(sources[0])
        joiner = _Joiner(out, video_out, audio_out)
        for index, source in enumerate(sources):
            with av.open(_openable(source), mode="r") as container:
                joiner.copy(index, container)


class _Joiner:
    """Copies each part's packets after the parts before it. ``offset`` is where the next part starts: the
    end of the last one's video. A part's first audio packets that would overlap the audio already written
    (the encoder's priming, before the part's time zero) are left out."""

    def __init__(self, out: av.container.OutputContainer, video: av.video.stream.VideoStream,
                 audio: av.audio.stream.AudioStream | None) -> None:
        self._out, self._video, self._audio = out, video, audio
        self._offset = Fraction(0)
        self._last_dts: dict[str, Fraction] = {}

    def copy(self, index: int, container: av.container.InputContainer) -> None:
        streams = [container.streams.video[0], *container.streams.audio[:1]]
        end = self._offset
        for packet in container.demux(streams):
            if packet.dts is None or packet.time_base is None:
                continue  # the demuxer's empty packet at the end of a stream
            kind = packet.stream.type
            shift = int(self._offset / packet.time_base)
            dts = (packet.dts + shift) * packet.time_base
            if dts <= self._last_dts.get(kind, Fraction(-1 << 62)):
                if kind == "video":
                    raise _Overlap(f"part {index}'s video starts before part {index - 1}'s ends")
                continue
            packet.dts += shift
            if packet.pts is not None:
                packet.pts += shift
                if kind == "video":
                    end = max(end, (packet.pts + (packet.duration or 0)) * packet.time_base)
            destination = self._video if kind == "video" else self._audio
            if destination is not None:
                self._last_dts[kind] = dts
                packet.stream = destination
                self._out.mux(packet)
        self._offset = end


# --- re-encode -----------------------------------------------------------------------------------

def _reencode(sources: Sequence[MediaSource], target: Path, parts: tuple[MediaFacts, ...]) -> None:
    import av

    first = parts[0]
    rate = Fraction(first.fps).limit_denominator(1001)
    with av.open(str(target), "w", format="mp4", options={"movflags": "faststart"}) as out:
        video = _video_encoder(out, first, rate)
        sound = _Sound(out) if any(part.has_audio for part in parts) else None
        offset = Fraction(0)
        for source, facts in zip(sources, parts, strict=True):
            until = offset + Fraction(facts.duration).limit_denominator(1_000_000)
            slots = _Slots(first, rate, offset, until)
            with av.open(_openable(source), mode="r") as container:
                for frame in container.decode(*container.streams.video[:1], *container.streams.audio[:1]):
                    if isinstance(frame, av.VideoFrame):
                        _encode(out, video, slots.feed(frame))
                    elif isinstance(frame, av.AudioFrame) and sound is not None:
                        sound.feed(frame, until)
            _encode(out, video, slots.finish())
            if sound is not None:
                sound.close_part(until)
            offset = until
        _encode(out, video, [None])
        if sound is not None:
            sound.finish()


def _encode(out: av.container.OutputContainer, video: av.video.stream.VideoStream,
            frames: Iterable[av.VideoFrame | None]) -> None:
    for frame in frames:
        out.mux(video.encode(frame))


def _video_encoder(out: av.container.OutputContainer, first: MediaFacts, rate: Fraction) -> av.video.stream.VideoStream:
    import av

    encoder = "libx264" if "libx264" in av.codecs_available else "h264"
    video = out.add_stream(encoder, rate=rate, options=dict(_X264_OPTIONS) if encoder == "libx264" else {})
    if not isinstance(video, av.video.stream.VideoStream):
        raise TypeError(f"{encoder!r} is not a video encoder")
    video.width, video.height, video.pix_fmt = first.width, first.height, "yuv420p"
    return video


class _Slots:
    """One part's frames at the joined video's constant rate: slot ``n`` (at ``n / rate`` seconds) shows the
    last frame that starts at or before it, so a part of ``d`` seconds fills ``d * rate`` slots whatever its
    own rate."""

    def __init__(self, first: MediaFacts, rate: Fraction, offset: Fraction, until: Fraction) -> None:
        self._size, self._rate, self._offset = (first.width, first.height), rate, offset
        self._slot, self._stop = round(offset * rate), round(until * rate)
        self._shown: av.VideoFrame | None = None

    def feed(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        starts = self._offset + Fraction(frame.time or 0.0).limit_denominator(1_000_000)
        ready = []
        while self._shown is not None and self._slot < self._stop and Fraction(self._slot) / self._rate < starts:
            ready.append(self._stamped(self._shown))
        self._shown = frame
        return ready

    def finish(self) -> list[av.VideoFrame]:
        ready = []
        while self._shown is not None and self._slot < self._stop:
            ready.append(self._stamped(self._shown))
        return ready

    def _stamped(self, frame: av.VideoFrame) -> av.VideoFrame:
        width, height = self._size
        scaled = frame.reformat(width=width, height=height, format="yuv420p")
        scaled.pts, scaled.time_base = self._slot, 1 / self._rate
        self._slot += 1
        return scaled


class _Sound:
    """The joined AAC track: each part's audio resampled, then cut or padded with silence to end with its video."""

    def __init__(self, out: av.container.OutputContainer) -> None:
        import av

        self._out = out
        self._stream = out.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=_AUDIO_RATE)
        self._written = 0

    def feed(self, decoded: av.AudioFrame, until: Fraction) -> None:
        for frame in self._resampler.resample(decoded):
            self._write(frame, round(until * _AUDIO_RATE))

    def close_part(self, until: Fraction) -> None:
        import av

        end = round(until * _AUDIO_RATE)
        for frame in self._resampler.resample(None):
            self._write(frame, end)
        self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=_AUDIO_RATE)
        while self._written < end:
            count = min(end - self._written, 4096)
            silence = av.AudioFrame(format="fltp", layout="stereo", samples=count)
            silence.sample_rate = _AUDIO_RATE
            for plane in silence.planes:
                plane.update(bytes(plane.buffer_size))
            self._write(silence, end)

    def finish(self) -> None:
        self._out.mux(self._stream.encode(None))

    def _write(self, frame: av.AudioFrame, end: int) -> None:
        room = end - self._written
        if room <= 0:
            return
        if frame.samples > room:
            frame = _cut(frame, room)
        frame.pts, frame.time_base = self._written, Fraction(1, _AUDIO_RATE)
        self._written += frame.samples
        self._out.mux(self._stream.encode(frame))


def _cut(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    import av

    cut = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=samples)
    cut.sample_rate = frame.sample_rate
    width = frame.format.bytes
    for source, plane in zip(frame.planes, cut.planes, strict=True):
        plane.update(bytes(source)[:samples * width] + bytes(plane.buffer_size - samples * width))
    return cut
