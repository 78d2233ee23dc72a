/*
 * chan.c - channels: trio's memory channel with Go's hchan hand-off.
 *
 * A channel is one braid__chan plus any number of braid_tx / braid_rx
 * handles (each its own small heap object).  The buffer is a FIFO of
 * segments allocated as it grows (each about half the buffered bytes, from
 * 4 KiB to 1 MiB, never beyond the capacity) and freed as it drains, the
 * big ones mmap'd so that their memory really goes back: neither a huge
 * capacity nor a drained burst holds memory.  elem_size 0 keeps no
 * segments: count is the buffer.  Elements up to BRAID__CHAN_ELEM_MAX
 * (1 MiB) are copied straight between the parties' buffers and segments.
 *
 * Invariants (under ch->lock, ignoring nodes whose waiter is already
 * decided, which are skipped and unlinked by whoever meets them first):
 *  - recvq non-empty  =>  count == 0 (a receiver blocks only on an empty
 *    buffer, and a sender serves waiting receivers before the buffer).
 *  - sendq non-empty  =>  count == cap (a sender blocks only on a full
 *    buffer, or cap 0; a receiver that frees a slot refills it from the
 *    first waiting sender).
 *  - rx_open == 0  =>  sendq empty and count == 0 (last rx close evicts
 *    the senders with -EPIPE and drops the buffer).
 *  - tx_open == 0  =>  recvq empty (last tx close evicts the receivers with
 *    -EPIPE; the buffer is then empty by the first invariant).
 *  - refs == tx_open + rx_open + pins.  A node is pinned from its enqueue
 *    until either a party that wins its waiter's claim through it unlinks
 *    it (that party drops the pin: the woken waiter never touches the
 *    channel again), or its own waiter leaves (braid__chan_leave: timed
 *    out, cancelled, or a select case that did not fire).  A party that
 *    unlinks a node but loses the claim leaves the pin to the waiter.
 *    refs changes only under ch->lock; whoever drops it to 0 frees the
 *    channel after unlocking (nothing can reach it any more).
 *
 * Hand-off (Go's chan.go): a sender that finds a waiting receiver copies
 * its element straight into node->elem; a receiver on a full buffer takes
 * the head and pulls the first waiting sender's element into the tail; a
 * receiver on cap 0 copies straight from the sender's node->elem.  Every
 * such step pops the peer's node, then braid__waiter_claim()s the peer's
 * waiter (a select waiter shares one state word across its nodes; the
 * outcome carries node->index), copies only after winning, and wakes the
 * peer after dropping ch->lock.  The peer cannot leave braid__waiter_wait
 * before that wake, so its buffer and waiter stay valid meanwhile.
 *
 * Close: the closer takes ch->lock, unlinks and claims every node that
 * came through the closing handle (node->data) with -EBADF, and when it
 * closes the last handle of its side, every node of the other side with
 * -EPIPE.  Woken peers never touch their (freed) handle again, nor the
 * channel: the closer dropped their pins.
 *
 * Lock discipline: ch->lock is a spinlock held for a few loads, stores
 * and one element copy; nothing blocks or allocates beyond a segment under
 * it.  One exception in time, not in work: a solo waiter (no deadline, one
 * node) keeps ch->lock from linking its node until it is off its stack;
 * the deferred action of its park (waiter.c, parked_solo) marks it parked
 * and unlocks, on the next context of the same worker before that runs any
 * coroutine code, so nothing between can take a channel lock.
 * braid_select holds several channel locks at once, taken in address
 * order.  Lock order: ch->lock < coro->lk < timer and run-queue locks (the
 * waiter takes those when claimed or woken under ch->lock).
 *
 * Ordering: everything, refs included, is protected by ch->lock.  The
 * claim CAS (acq_rel) decides who owns the waiter; the copy follows it and
 * the wake publishes the copy to the woken party.  A waiter decided
 * through its node by a channel party finds that node already unlinked
 * and its pin dropped, and skips the lock.
 */
#include "../runtime/common.h"
#include "chan.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Segment sizes.  A new segment holds about half of what is buffered, so
   a filling buffer grows geometrically from SEG_MIN_BYTES to SEG_MAX_BYTES
   per segment while a short queue stays on small segments.  Segments of
   SEG_MAP_BYTES or more are mmap'd, so that draining a burst gives the
   memory back to the system at once (free() would keep it in the arena);
   only small segments are kept for reuse (SPARE_MAX of them). */
#define SEG_MIN_BYTES 4096
#define SEG_MAX_BYTES ((size_t)1 << 20)
#define SEG_MAP_BYTES ((size_t)128 << 10)
#define SPARE_MAX 2

/* ---- buffer: a FIFO of segments ----------------------------------------- */

/* Copy one element; the common small sizes as plain moves (no call). */
static inline void elem_copy(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, n); break;
    }
}

static void *slot(const braid__chan *ch, braid__seg *s, size_t i)
{
    return (char *)s->slots + i * ch->elem_size;
}

static size_t seg_bytes(const braid__chan *ch, size_t len)
{
    return sizeof(braid__seg) + len * ch->elem_size;
}

static braid__seg *seg_alloc(const braid__chan *ch, size_t len)
{
    size_t bytes = seg_bytes(ch, len);
    braid__seg *s;

    if (bytes >= SEG_MAP_BYTES) {
        s = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED)
            return NULL;
    } else if (!(s = malloc(bytes))) {
        return NULL;
    }
    s->next = NULL;
    s->len = len;
    return s;
}

static void seg_free(const braid__chan *ch, braid__seg *s)
{
    size_t bytes = seg_bytes(ch, s->len);

    if (bytes >= SEG_MAP_BYTES)
        munmap(s, bytes);
    else
        free(s);
}

static void seg_free_list(const braid__chan *ch, braid__seg *s)
{
    while (s) {
        braid__seg *next = s->next;
        seg_free(ch, s);
        s = next;
    }
}

/* A segment for the tail: about half the buffered bytes, within the
   bounds above and the capacity; small ones come from the spare list. */
static braid__seg *seg_new(braid__chan *ch)
{
    size_t esz = ch->elem_size;
    size_t len = ch->count / 2;
    size_t most = SEG_MAX_BYTES / esz;

    if (len > most)
        len = most;
    if (len < ch->seg_min)
        len = ch->seg_min;
    if (len > ch->cap)
        len = ch->cap;
    if (len == ch->seg_min && ch->spare) {
        braid__seg *s = ch->spare;
        ch->spare = s->next;
        ch->nspare--;
        s->next = NULL;
        return s;
    }
    return seg_alloc(ch, len);
}

static void seg_give(braid__chan *ch, braid__seg *s)
{
    if (s->len != ch->seg_min || ch->nspare >= SPARE_MAX) {
        seg_free(ch, s);
        return;
    }
    s->next = ch->spare;
    ch->spare = s;
    ch->nspare++;
}

/* Make sure the next push needs no allocation.  false: out of memory. */
static bool buf_reserve(braid__chan *ch)
{
    if (!ch->seg_min || (ch->tail && ch->tidx < ch->tail->len) || ch->reserve)
        return true;
    ch->reserve = seg_new(ch);
    return ch->reserve != NULL;
}

/* Append elem.  0, or -ENOMEM (nothing changed). */
static int buf_push(braid__chan *ch, const void *elem)
{
    if (ch->seg_min) {
        if (!buf_reserve(ch))
            return -ENOMEM;
        if (!ch->tail || ch->tidx == ch->tail->len) {
            braid__seg *s = ch->reserve;
            ch->reserve = NULL;
            if (ch->tail)
                ch->tail->next = s;
            else
                ch->head = s, ch->hidx = 0;
            ch->tail = s;
            ch->tidx = 0;
        }
        elem_copy(slot(ch, ch->tail, ch->tidx++), elem, ch->elem_size);
    }
    ch->count++;
    return 0;
}

/* Remove the head into elem (NULL: discard).  count > 0. */
static void buf_pop(braid__chan *ch, void *elem)
{
    ch->count--;
    if (!ch->seg_min)
        return;
    if (elem)
        elem_copy(elem, slot(ch, ch->head, ch->hidx), ch->elem_size);
    ch->hidx++;
    if (ch->count == 0) {               /* head == tail: hand it back */
        seg_give(ch, ch->head);
        ch->head = ch->tail = NULL;
    } else if (ch->hidx == ch->head->len) {
        braid__seg *s = ch->head;
        ch->head = s->next;
        ch->hidx = 0;
        seg_give(ch, s);
    }
}

/* Drop every buffered element and free all segments. */
static void buf_drop(braid__chan *ch)
{
    seg_free_list(ch, ch->head);
    seg_free_list(ch, ch->spare);
    seg_free_list(ch, ch->reserve);
    ch->head = ch->tail = ch->spare = ch->reserve = NULL;
    ch->nspare = 0;
    ch->count = 0;
}

/* ---- the non-blocking halves -------------------------------------------- */

/* Pop nodes off q until one whose waiter this caller wins (outcome: that
   node's index, OK); NULL if none.  ch->lock held. */
static inline __attribute__((always_inline))
braid__wnode *claim_first(braid__chan *ch, braid__wlist *q)
{
    braid__wnode *n;

    while ((n = braid__wlist_pop(q)))
        if (braid__waiter_claim_locked(n->w,
                braid__chan_outcome(n->index, BRAID__CHAN_OK))) {
            ch->refs--;         /* its pin: the waiter will not come back */
            return n;
        }
    return NULL;
}

/* The non-blocking halves, inlined into chan_op (the body of braid_send
   and braid_recv) and wrapped for select.c. */
static inline __attribute__((always_inline))
int try_send(braid__chan *ch, const void *elem, braid__waiter **wake)
{
    if (ch->rx_open == 0)
        return -EPIPE;
    braid__wnode *n = claim_first(ch, &ch->recvq);
    if (n) {                            /* straight into the receiver */
        if (n->elem && ch->elem_size)
            elem_copy(n->elem, elem, ch->elem_size);
        *wake = n->w;
        return 1;
    }
    if (ch->count >= ch->cap)
        return 0;
    int r = buf_push(ch, elem);
    return r ? r : 1;
}

static inline __attribute__((always_inline))
int try_recv(braid__chan *ch, void *elem, braid__waiter **wake)
{
    braid__wnode *n;

    if (ch->count > 0) {
        buf_pop(ch, elem);
        /* A slot is free: pull the first waiting sender into the tail.  On
           out of memory it stays queued for the next receiver. */
        if (ch->sendq.head && buf_reserve(ch) &&
            (n = claim_first(ch, &ch->sendq))) {
            buf_push(ch, n->elem);
            *wake = n->w;
        }
        return 1;
    }
    if ((n = claim_first(ch, &ch->sendq))) {  /* cap 0: straight from it */
        if (elem && ch->elem_size)
            elem_copy(elem, n->elem, ch->elem_size);
        *wake = n->w;
        return 1;
    }
    return ch->tx_open == 0 ? -EPIPE : 0;
}

int braid__chan_try_send(braid__chan *ch, const void *elem,
                         braid__waiter **wake)
{
    return try_send(ch, elem, wake);
}

int braid__chan_try_recv(braid__chan *ch, void *elem, braid__waiter **wake)
{
    return try_recv(ch, elem, wake);
}

/* ---- waiting ------------------------------------------------------------ */

void braid__chan_enqueue(braid__chan *ch, braid__wnode *node, bool send)
{
    braid__wlist_push(send ? &ch->sendq : &ch->recvq, node);
    ch->refs++;
}

static void chan_free(braid__chan *ch)
{
    buf_drop(ch);
    free(ch);
}

void braid__chan_leave(braid__chan *ch, braid__wnode *node, bool send)
{
    braid__spin_lock(&ch->lock);
    braid__wlist_remove(send ? &ch->sendq : &ch->recvq, node);
    bool last = --ch->refs == 0;
    braid__spin_unlock(&ch->lock);
    if (last)
        chan_free(ch);
}

/* Block the caller on ch (locked; unlocked on return) until a peer, a
   closer, the deadline or a cancel decides.  handle: the braid_tx/rx the
   call came through. */
static inline __attribute__((always_inline))
int block(braid__chan *ch, void *elem, const void *handle, bool send,
                 int64_t deadline)
{
    braid__coro *me = braid__current();
    int r = braid__chan_past(deadline) ? -EAGAIN
          : braid__cancel_pending_as(me) ? -ECANCELED : 0;
    if (r) {
        braid__spin_unlock(&ch->lock);
        return r;
    }
    braid__waiter w;
    braid__wnode node = { .w = &w, .elem = elem, .data = (uintptr_t)handle };
    braid__waiter_init_as(&w, me, send ? "chan send" : "chan recv", ch);
    w.solo = deadline == BRAID_FOREVER;
    braid__chan_enqueue(ch, &node, send);
    r = braid__waiter_wait_locked(&w, &ch->lock, deadline);
    if (r < 0)                  /* timed out or cancelled: our pin is ours */
        braid__chan_leave(ch, &node, send);
    return r < 0 ? r : braid__chan_result(r);
}

/* ---- public calls ------------------------------------------------------- */

/* The steady state of a buffered channel, under ch->lock: nobody waits on
   the other side and the element fits the current segment without a
   segment change.  Everything else takes the general path. */
static inline bool fast_send(braid__chan *ch, const braid_tx *tx,
                             const void *elem)
{
    if (unlikely(tx->closed || !ch->rx_open || ch->recvq.head ||
                 ch->count >= ch->cap || !ch->tail ||
                 ch->tidx >= ch->tail->len))
        return false;
    elem_copy(slot(ch, ch->tail, ch->tidx), elem, ch->elem_size);
    ch->tidx++;
    ch->count++;
    return true;
}

static inline bool fast_recv(braid__chan *ch, const braid_rx *rx, void *elem)
{
    if (unlikely(rx->closed || ch->count < 2 || ch->sendq.head || !elem ||
                 ch->hidx + 1 >= ch->head->len))
        return false;
    elem_copy(elem, slot(ch, ch->head, ch->hidx), ch->elem_size);
    ch->hidx++;
    ch->count--;
    return true;
}

/* The general case of braid_send and braid_recv: one body for both
   directions, entered by a tail call.  A coroutine that parks in a send
   is resumed by one that parked in a receive (cap 0, 1P1C), and the
   returns after the switch run up the other one's frames: with a body per
   direction, the CPU's return predictions missed at every frame that
   differs (twice per switch); with one, only at the return into the
   caller.  Cap 0 1P1C: 22 to 27 million messages a second. */
_Static_assert(offsetof(braid_tx, closed) == offsetof(braid_rx, closed),
               "chan_op reads closed through either handle");
static __attribute__((noinline))
int chan_op(braid__chan *ch, void *handle, void *elem, int64_t deadline,
            bool send)
{
    braid__waiter *wake = NULL;
    int r;
    braid__spin_lock(&ch->lock);
    /* Under the lock (a close may race with us); braid_tx and braid_rx
       share a layout, so closed is at one place. */
    bool closed = send ? ((braid_tx *)handle)->closed
                       : ((braid_rx *)handle)->closed;
    /* A buffered channel came here from its entry point's fast path, with
       the lock dropped since: the buffer may have moved meanwhile. */
    if (send) {
        if (ch->seg_min && fast_send(ch, handle, elem)) {
            braid__spin_unlock(&ch->lock);
            return 0;
        }
        r = closed ? -EBADF : try_send(ch, elem, &wake);
    } else {
        if (ch->seg_min && fast_recv(ch, handle, elem)) {
            braid__spin_unlock(&ch->lock);
            return 0;
        }
        r = closed ? -EBADF : try_recv(ch, elem, &wake);
    }
    if (r == 0)
        return block(ch, elem, handle, send, deadline);
    braid__spin_unlock(&ch->lock);
    if (wake) {
        braid__chaos_point();   /* the peer stays decided but parked */
        braid__waiter_wake_now(wake);
    }
    return r < 0 ? r : 0;
}

/* A buffered channel's steady state, else chan_op (which locks again: a
   full or empty buffer, once per burst).  Kept out of the entry points so
   that they build no frame on the way to chan_op (an unbuffered channel);
   inside chan_op the steady state was 6% slower (cap 128 1P1C). */
static __attribute__((noinline))
int send_buffered(braid__chan *ch, braid_tx *tx, const void *elem,
                  int64_t deadline)
{
    braid__spin_lock(&ch->lock);
    bool done = fast_send(ch, tx, elem);
    braid__spin_unlock(&ch->lock);
    return done ? 0 : chan_op(ch, tx, (void *)elem, deadline, true);
}

static __attribute__((noinline))
int recv_buffered(braid__chan *ch, braid_rx *rx, void *elem,
                  int64_t deadline)
{
    braid__spin_lock(&ch->lock);
    bool done = fast_recv(ch, rx, elem);
    braid__spin_unlock(&ch->lock);
    return done ? 0 : chan_op(ch, rx, elem, deadline, false);
}

BRAID_EXPORT int braid_send(braid_tx *tx, const void *elem, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!tx || (!elem && tx->ch->elem_size))
        return -EINVAL;
    braid__chan *ch = tx->ch;
    return ch->seg_min ? send_buffered(ch, tx, elem, deadline)
                       : chan_op(ch, tx, (void *)elem, deadline, true);
}

BRAID_EXPORT int braid_recv(braid_rx *rx, void *elem, int64_t deadline)
{
    BRAID__FORK_GUARD();
    if (!rx)
        return -EINVAL;
    braid__chan *ch = rx->ch;
    return ch->seg_min ? recv_buffered(ch, rx, elem, deadline)
                       : chan_op(ch, rx, elem, deadline, false);
}

/* Slots of the smallest segment: about SEG_MIN_BYTES, at least 1, at
   most cap; 0 when there is nothing to store. */
static size_t seg_min_for(size_t elem_size, size_t cap)
{
    if (elem_size == 0 || cap == 0)
        return 0;
    size_t n = (SEG_MIN_BYTES - sizeof(braid__seg)) / elem_size;
    if (n == 0)
        n = 1;
    return n < cap ? n : cap;
}

BRAID_EXPORT int braid_chan_open(braid_tx **tx, braid_rx **rx,
                                 size_t elem_size, size_t capacity)
{
    BRAID__FORK_GUARD();
    if (!tx || !rx || elem_size > BRAID__CHAN_ELEM_MAX)
        return -EINVAL;
    if (capacity != BRAID_UNBOUNDED && elem_size &&
        capacity > SIZE_MAX / elem_size)
        return -EINVAL;
    braid__chan *ch = calloc(1, sizeof *ch);
    braid_tx *t = malloc(sizeof *t);
    braid_rx *r = malloc(sizeof *r);
    if (!ch || !t || !r) {
        free(ch), free(t), free(r);
        return -ENOMEM;
    }
    ch->elem_size = elem_size;
    ch->cap = capacity;
    ch->seg_min = seg_min_for(elem_size, capacity);
    ch->tx_open = ch->rx_open = 1;
    ch->refs = 2;
    *t = (braid_tx){ .ch = ch };
    *r = (braid_rx){ .ch = ch };
    *tx = t;
    *rx = r;
    return 0;
}

/* One more handle on ch's side *open (tx_open or rx_open), unless the
   handle it is cloned from is closed. */
static int clone_handle(braid__chan *ch, const bool *closed, size_t *open)
{
    int r = 0;

    braid__spin_lock(&ch->lock);
    if (*closed) {
        r = -EBADF;
    } else {
        (*open)++;
        ch->refs++;
    }
    braid__spin_unlock(&ch->lock);
    return r;
}

BRAID_EXPORT int braid_tx_clone(braid_tx *tx, braid_tx **out)
{
    BRAID__FORK_GUARD();
    if (!tx || !out)
        return -EINVAL;
    braid_tx *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    int r = clone_handle(tx->ch, &tx->closed, &tx->ch->tx_open);
    if (r) {
        free(c);
        return r;
    }
    *c = (braid_tx){ .ch = tx->ch };
    *out = c;
    return 0;
}

BRAID_EXPORT int braid_rx_clone(braid_rx *rx, braid_rx **out)
{
    BRAID__FORK_GUARD();
    if (!rx || !out)
        return -EINVAL;
    braid_rx *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    int r = clone_handle(rx->ch, &rx->closed, &rx->ch->rx_open);
    if (r) {
        free(c);
        return r;
    }
    *c = (braid_rx){ .ch = rx->ch };
    *out = c;
    return 0;
}

/* Unlink and decide every node of q that came through handle (NULL: all
   of them) with kind; the woken go into b.  ch->lock held. */
static void evict(braid__chan *ch, braid__wlist *q, const void *handle,
                  int kind, braid__batch *b)
{
    braid__wnode *n, *next;

    for (n = q->head; n; n = next) {
        next = n->next;
        if (handle && n->data != (uintptr_t)handle)
            continue;
        braid__wlist_remove(q, n);
        if (braid__waiter_claim(n->w, braid__chan_outcome(n->index, kind))) {
            ch->refs--;         /* its pin (see the invariants) */
            braid__waiter_wake(n->w, b);
        }
    }
}

/* The common end of both closes, ch->lock held: drop the handle's
   reference, unlock, wake what was evicted, free what is unreachable. */
static int close_finish(braid__chan *ch, braid__batch *b, void *handle)
{
    bool last = --ch->refs == 0;
    braid__spin_unlock(&ch->lock);
    if (b->n)
        braid__ready_batch(b);
    free(handle);
    if (last)
        chan_free(ch);
    return 0;
}

BRAID_EXPORT int braid_tx_close(braid_tx *tx)
{
    BRAID__FORK_GUARD();
    if (!tx)
        return -EINVAL;
    braid__chan *ch = tx->ch;
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&ch->lock);
    tx->closed = true;
    ch->tx_open--;
    evict(ch, &ch->sendq, tx, BRAID__CHAN_BADF, &b);
    if (ch->tx_open == 0)               /* EOF for the waiting receivers */
        evict(ch, &ch->recvq, NULL, BRAID__CHAN_PIPE, &b);
    return close_finish(ch, &b, tx);
}

BRAID_EXPORT int braid_rx_close(braid_rx *rx)
{
    BRAID__FORK_GUARD();
    if (!rx)
        return -EINVAL;
    braid__chan *ch = rx->ch;
    braid__batch b = BRAID__BATCH_INIT;
    braid__spin_lock(&ch->lock);
    rx->closed = true;
    ch->rx_open--;
    evict(ch, &ch->recvq, rx, BRAID__CHAN_BADF, &b);
    if (ch->rx_open == 0) {             /* nobody will ever read these */
        evict(ch, &ch->sendq, NULL, BRAID__CHAN_PIPE, &b);
        buf_drop(ch);
    }
    return close_finish(ch, &b, rx);
}

/* Nodes of q whose waiter is still undecided.  ch->lock held. */
static size_t undecided(const braid__wlist *q)
{
    size_t k = 0;

    for (const braid__wnode *n = q->head; n; n = n->next)
        k += ld_relaxed(&n->w->state) == BRAID__WAITING;
    return k;
}

static int stats(braid__chan *ch, braid_chan_info *info)
{
    braid__spin_lock(&ch->lock);
    *info = (braid_chan_info){
        .buffered = ch->count, .capacity = ch->cap,
        .tx_open = ch->tx_open, .rx_open = ch->rx_open,
        .senders_waiting = undecided(&ch->sendq),
        .receivers_waiting = undecided(&ch->recvq),
    };
    braid__spin_unlock(&ch->lock);
    return 0;
}

BRAID_EXPORT int braid_chan_stats(braid_rx *rx, braid_chan_info *info)
{
    BRAID__FORK_GUARD();
    return rx && info ? stats(rx->ch, info) : -EINVAL;
}

BRAID_EXPORT int braid_chan_stats_tx(braid_tx *tx, braid_chan_info *info)
{
    BRAID__FORK_GUARD();
    return tx && info ? stats(tx->ch, info) : -EINVAL;
}
