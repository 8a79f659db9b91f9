"""Test helpers: real servers, fakes written as real code, fixture loaders."""
