## tests/: one Check suite per area.  White-box suites link the internal
## convenience library; check_api links only the installed-style libbraid.la
## so that a hidden symbol used by mistake fails the link.
include tests/runtime.mk
include tests/sync.mk
include tests/netio.mk
include tests/faults.mk
include tests/model.mk

## A short braid-stress pass (20 s, every profile); `make stress` runs ten
## minutes.
TESTS += tests/check_stress.sh
EXTRA_DIST += tests/check_stress.sh
