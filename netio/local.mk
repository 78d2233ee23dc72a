## netio/: the I/O thread and what it serves (see DESIGN.md).
libbraid_core_la_SOURCES += \
	netio/poller.h netio/poller.c \
	netio/netio.h netio/fdtab.c \
	netio/net.c netio/tcp.c \
	netio/file.c netio/blocking.c
