/*
 * chan.h - the channel object, shared by chan.c (send, receive, handles)
 * and select.c (braid_select).  Invariants, lock discipline and ordering:
 * the comment at the top of chan.c.
 */
#ifndef BRAID_CHAN_H
#define BRAID_CHAN_H

#include "../runtime/common.h"
#include "../runtime/waiter.h"

#include <stddef.h>

/* Largest element: 1 MiB (braid.h).  Elements are copied directly between
   the parties' buffers and the channel's segments, never through a stack
   temporary, so the bound is about memory, not about stack size. */
#define BRAID__CHAN_ELEM_MAX ((size_t)1 << 20)

/* Most cases of one braid_select (braid.h). */
#define BRAID__SELECT_MAX 65536

/* A waiter's outcome when a channel party decides it: the case index (0
   outside select) in the low bits, the result kind above.  Always >= 0, so
   it never collides with the waiter's own -ETIMEDOUT / -ECANCELED. */
#define BRAID__CHAN_IDX_BITS 17
#define BRAID__CHAN_IDX_MASK ((1 << BRAID__CHAN_IDX_BITS) - 1)
enum { BRAID__CHAN_OK = 0, BRAID__CHAN_PIPE = 1, BRAID__CHAN_BADF = 2 };

static inline int braid__chan_outcome(int index, int kind)
{
    return index | (kind << BRAID__CHAN_IDX_BITS);
}

/* The call's result (0, -EPIPE, -EBADF) for an outcome >= 0. */
static inline int braid__chan_result(int outcome)
{
    switch (outcome >> BRAID__CHAN_IDX_BITS) {
    case BRAID__CHAN_OK:   return 0;
    case BRAID__CHAN_PIPE: return -EPIPE;
    default:               return -EBADF;
    }
}

/* One buffer segment: len slots of elem_size bytes, FIFO. */
typedef struct braid__seg {
    struct braid__seg *next;   /* toward the tail; spare list link */
    size_t len;
    max_align_t slots[];
} braid__seg;

typedef struct braid__chan {
    braid__spin lock;
    size_t elem_size;          /* immutable */
    size_t cap;                /* immutable; BRAID_UNBOUNDED = no limit */
    size_t seg_min;            /* immutable: slots of the smallest
                                  segment; 0 when elem_size or cap is 0
                                  (no segments: count is the buffer) */
    size_t count;              /* lock: elements buffered */
    braid__seg *head, *tail;   /* lock: read at head[hidx], write at
                                  tail[tidx]; both NULL when count == 0 */
    size_t hidx, tidx;         /* lock */
    braid__seg *spare;         /* lock: drained seg_min segments kept
                                  for reuse */
    braid__seg *reserve;       /* lock: allocated for the next push */
    unsigned nspare;           /* lock */
    braid__wlist sendq;        /* lock: blocked senders; node->elem is the
                                  value, node->data the braid_tx */
    braid__wlist recvq;        /* lock: blocked receivers; node->elem the
                                  buffer (may be NULL), node->data the
                                  braid_rx */
    size_t tx_open, rx_open;   /* lock: live handles of each side */
    size_t refs;               /* lock: live handles + pinned wait-list nodes;
                                  the channel is freed at 0 */
} braid__chan;

/* A handle: its own heap object, so that a call blocked on it can be told
   apart (node->data) when exactly this handle is closed. */
struct braid_tx { braid__chan *ch; bool closed; /* closed: ch->lock */ };
struct braid_rx { braid__chan *ch; bool closed; /* closed: ch->lock */ };

/* Non-blocking halves, called with ch->lock held.  Return 1 when done
   (*wake then names the peer to braid__waiter_wake after unlocking, or is
   left alone), 0 when the call would block, or the call's negative result
   (-EPIPE, -ENOMEM). */
int braid__chan_try_send(braid__chan *ch, const void *elem,
                         braid__waiter **wake);
int braid__chan_try_recv(braid__chan *ch, void *elem, braid__waiter **wake);

/* Link node on ch's queue for the direction send and pin ch (one
   reference).  ch->lock held. */
void braid__chan_enqueue(braid__chan *ch, braid__wnode *node, bool send);

/* The waiter of node leaves ch: unlink node if it is still linked and
   drop its pin, freeing ch if that was the last reference.  Takes
   ch->lock.  Not for a node a channel party decided the waiter through:
   that party unlinked it and dropped the pin, and ch may be gone. */
void braid__chan_leave(braid__chan *ch, braid__wnode *node, bool send);

/* A deadline that means "try once": anything but BRAID_FOREVER that is
   not in the future. */
static inline bool braid__chan_past(int64_t deadline)
{
    return deadline != BRAID_FOREVER && deadline <= braid_now();
}

#endif
