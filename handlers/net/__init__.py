"""Network plumbing: the SSRF guard, the result download, range reads, the HTTP server and its limits."""
