"""Foundation: the exception tree, logging and JSON reading. Imports nothing else of the project."""
