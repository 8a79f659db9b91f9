"""What a stored video is, and what can be made of it: facts, checks, frames and assembly.

* :mod:`handlers.media.ranged` -- a seekable read-only file over byte ranges of a stored object.
* :mod:`handlers.media.facts` -- :class:`~handlers.media.facts.MediaFacts` read with PyAV from the
  container index; an unplayable file raises :class:`~handlers.media.facts.UnplayableOutput`.
* :mod:`handlers.media.checks` -- the facts against the job's request.
* :mod:`handlers.media.frames` -- poster and last frame as JPEG, with thumbnails.
* :mod:`handlers.media.assemble` -- several MP4 files joined into one, remuxed where they match.

Nothing here imports PyAV or Pillow at import time: the modules that need them import them inside
the functions that do, so a Lambda entry that imports this package stays light.
"""
