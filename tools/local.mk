## tools/: see DESIGN.md
## braid-stress: the stress-test harness (installed).  It links only the
## public library, so a hidden symbol used by mistake fails the link.
bin_PROGRAMS += tools/braid-stress
tools_braid_stress_SOURCES = tools/braid-stress.c \
	tools/stress/stress.h tools/stress/common.c tools/stress/report.c \
	tools/stress/spawn.c tools/stress/pipeline.c tools/stress/select.c \
	tools/stress/close.c tools/stress/cancel.c tools/stress/net.c \
	tools/stress/threads.c tools/stress/sync.c tools/stress/waits.c \
	tools/stress/blocking.c
tools_braid_stress_LDADD = libbraid.la -lm

## make stress: every profile, 10 minutes (STRESS_FLAGS adds options, e.g.
## STRESS_FLAGS='--seed 7 --workers 4').
stress: tools/braid-stress$(EXEEXT)
	$(builddir)/tools/braid-stress --seconds 600 --profile all $(STRESS_FLAGS)

.PHONY: stress
