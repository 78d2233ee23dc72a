## tests/model.mk: spin models of the protocols, checked exhaustively.
##   tests/model/park.pml  worker park/unpark (runtime/sched.c)
##   tests/model/chan.pml  channels, select, the waiter (sync/chan.c,
##                         sync/select.c, runtime/waiter.c)
##   tests/model/asym.pml  the asymmetric Dekker protocols under x86-TSO: the
##                         next slot (runtime/sched.c) and the solo waiter's
##                         claim (runtime/waiter.h, runtime/coro.c)
## Not part of `make check` (it needs spin and takes a minute or two on two
## cores): run `make check-model`.  Each model must verify, and each
## deliberately broken variant must produce a counterexample.
EXTRA_DIST += tests/model/park.pml tests/model/chan.pml tests/model/asym.pml \
	tests/model/run.sh

.PHONY: check-model
check-model:
	$(SHELL) $(srcdir)/tests/model/run.sh
