## tests/: one Check suite per area.  White-box suites link the internal
## convenience library; check_api links only the installed-style libbraid.la
## so that a hidden symbol used by mistake fails the link.
include tests/runtime.mk
include tests/sync.mk
include tests/netio.mk
