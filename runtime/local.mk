## runtime/: coroutines, scheduler, waiter, timers.
libbraid_core_la_SOURCES += \
	runtime/common.h runtime/common.c \
	runtime/context.h runtime/context.c runtime/context_ucontext.c \
	runtime/context_x86_64.S runtime/context_aarch64.S \
	runtime/stack.h runtime/stack.c \
	runtime/coro.h runtime/coro.c \
	runtime/sched.h runtime/sched.c runtime/deque.h \
	runtime/waiter.h runtime/waiter.c \
	runtime/timer.h runtime/timer.c \
	runtime/runtime.h runtime/runtime.c runtime/dump.c
