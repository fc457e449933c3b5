"""The package version; kept equal to the hub's (workspace version in the root Cargo.toml)."""
__version__ = "0.1.0"
