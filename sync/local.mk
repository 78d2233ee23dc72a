## sync/: see DESIGN.md
libbraid_core_la_SOURCES += sync/chan.h sync/chan.c sync/select.c
## sync/: mutex, cond, wait group, semaphore, once, nursery
libbraid_core_la_SOURCES += sync/sync.h sync/mutex.c sync/cond.c sync/wg.c \
	sync/sem.c sync/once.c sync/nursery.c
