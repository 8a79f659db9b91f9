from tests.functional.test_probe import server, _probe, _urls, probe_request, AddressPolicy  # noqa
def test_measure(server):
    for p in ["/big.mp4", "/tail.mp4", "/fast.mp4", "/clip.mov", "/fast-norange.mp4", "/tail-norange.mp4"]:
        r = _probe(server, video_urls=_urls(server, p))
        m = r.media[0]; print(p, m.size, m.bytes_read, len([q for q in server.requests if q.path == p]))
    r = probe_request({"video_urls": _urls(server, "/tail-norange.mp4")}, policy=AddressPolicy(allowed_hosts=frozenset({server.host})), max_read_bytes=128*1024)
    print(r.media[0], r.violations)
    r = _probe(server, audio_urls=_urls(server, "/huge.wav", "/tone.mp3"))
    print(r.media)
