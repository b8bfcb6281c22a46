// netio: tcpcopy's live capture and send sockets (Linux), as few wake-ups and syscalls as we can.
//
// Capture: an AF_INET/SOCK_RAW/IPPROTO_TCP socket (every inbound TCP segment of the host, on every
// device) with a classic BPF program attached, so only the transfers' packets are queued to it. A
// uv_poll wakes us when it is readable; each recvmmsg fills up to `slots` fixed slots of ONE buffer
// that JavaScript owns, and JavaScript is called once per recvmmsg with the count (lengths in an
// Int32Array it owns too). Nothing is allocated per packet. After a wake-up that read packets and emptied the
// socket the poll rests for holdMs (5 ms by default, --capture-hold), so that what follows is read in one batch
// (batch_rx_hold).
//
// Send: an IPPROTO_RAW socket (IP_HDRINCL). Packets are copied into a bounded queue as the engine
// writes them and go out with sendmmsg when JavaScript flushes (once per event-loop turn). When the
// kernel says EAGAIN the rest waits for a writable poll, on ENOBUFS for a 1 ms timer; other errors
// fail (and count) that packet only. Counters live in a Float64Array JavaScript reads directly.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#define ADDON_NAME "netio"
#define ADDON_NOT_A_HANDLE "netio: not a handle of this kind"
#include "napi-util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// sendmmsg takes at most UIO_MAXIOV messages per call.
#define SEND_BATCH 1024
// Counters shared with JavaScript (indices into its Float64Array).
enum { SENT = 0, FAILED = 1, QUEUED = 2, SEND_CALLS = 3, SEND_COUNTERS = 4 };

static const napi_type_tag CAPTURE_TAG = { 0x6e6574696f636170ULL, 0x7475726531000001ULL };
static const napi_type_tag SENDER_TAG = { 0x6e6574696f73656eULL, 0x6465723100000001ULL };

// ---- capture ----

// captureOpen(arena: Buffer, slotSize, lengths: Int32Array, filter: Buffer | null, receiveBuffer, maxRounds, onBatch(count),
//             holdMs)
// Packet i of a batch is at arena[i * slotSize], lengths[i] bytes; a negative count is -errno. holdMs: see batch_rx_hold.
static napi_value capture_open(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_args(env, info, 8, argv)) return NULL;
  batch_args_t batch = { argv[0], argv[2], argv[6], NULL, NULL, 0, 0, 0, 0 };
  size_t arena_size;
  uint32_t receive_buffer;
  void *lengths;
  if (!get_bytes(env, argv[0], &batch.arena, &arena_size, "arena") || !get_u32(env, argv[1], &batch.slot_size, "slotSize") ||
      !get_u32(env, argv[4], &receive_buffer, "receiveBuffer") || !get_u32(env, argv[5], &batch.max_rounds, "maxRounds") ||
      !get_u32(env, argv[7], &batch.hold_ms, "holdMs") ||
      !get_typed_array(env, argv[2], napi_int32_array, 0, &lengths, &batch.slots, "netio: lengths must be an Int32Array")) return NULL;
  batch.lengths = lengths;
  if (!check_batch_args(env, &batch, arena_size) || !get_function(env, argv[6], "netio: onBatch must be a function")) return NULL;
  struct sock_fprog program = { 0, NULL };
  napi_valuetype kind;
  napi_typeof(env, argv[3], &kind);
  if (kind != napi_null && kind != napi_undefined) {
    uint8_t *code;
    size_t code_size;
    if (!get_bytes(env, argv[3], &code, &code_size, "filter")) return NULL;
    if (code_size == 0 || code_size % sizeof(struct sock_filter) != 0 || code_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
      napi_throw_range_error(env, NULL, "netio: a filter is 1-4096 instructions of 8 bytes");
      return NULL;
    }
    program.len = (unsigned short)(code_size / sizeof(struct sock_filter));
    program.filter = (struct sock_filter *)code;
  }

  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_TCP)", errno);
    return NULL;
  }
  // The filter goes on before anything is read; what was queued in between is picked out in JavaScript.
  if (program.len && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", err);
    return NULL;
  }
  if (receive_buffer) set_buffer_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, clamp_to_int(receive_buffer));
  // With no socket error behind a POLLERR, the batch count is libuv's status.
  batch_rx_t *c = batch_rx_open(env, sizeof *c, fd, &batch, 0, 0, NULL, "tcpcopy:capture", "netio capture");
  return c ? batch_rx_wrap(env, c, &CAPTURE_TAG) : NULL;
}

static napi_value capture_fd(napi_env env, napi_callback_info info) {
  napi_value out;
  batch_rx_t *c = get_handle_arg(env, info, &CAPTURE_TAG);
  if (!c) return NULL;
  napi_create_int32(env, c->closed ? -1 : c->fd, &out);
  return out;
}

static napi_value capture_close(napi_env env, napi_callback_info info) {
  batch_rx_t *c = get_handle_arg(env, info, &CAPTURE_TAG);
  if (c) batch_rx_release(env, c);
  return NULL;
}

// ---- send ----

typedef struct {
  uint32_t offset, length, dst;
} queued_t;

typedef struct {
  int fd;
  uv_poll_t poll;   // armed for writability after EAGAIN
  uv_timer_t timer; // armed after ENOBUFS
  int open_handles; // uv handles not yet closed
  int waiting;      // the poll or the timer is armed
  int closed, finalized;
  int last_errno;   // of the last packet that failed for good
  double *counters; // JavaScript's Float64Array
  napi_ref counters_ref;
  uint8_t *bytes;
  uint32_t byte_capacity, byte_tail;
  queued_t *queue;
  uint32_t capacity, head, tail;
  uint32_t counted; // packets before this queue index are counted in QUEUED already
  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iovs[SEND_BATCH];
  struct sockaddr_in addrs[SEND_BATCH];
} sender_t;

static void sender_free(sender_t *s) {
  free(s->bytes);
  free(s->queue);
  free(s);
}

static void sender_handle_closed(uv_handle_t *handle) {
  sender_t *s = handle->data;
  if (--s->open_handles == 0 && s->finalized) sender_free(s);
}

static void sender_writable(uv_poll_t *handle, int status, int events);
static void sender_retry(uv_timer_t *timer);

/** Sends what is queued, as far as the kernel takes it; arms a wait when it says "later". */
static void sender_flush(sender_t *s) {
  if (s->waiting) return;
  while (s->head < s->tail) {
    uint32_t n = s->tail - s->head;
    if (n > SEND_BATCH) n = SEND_BATCH;
    for (uint32_t i = 0; i < n; i++) {
      const queued_t *q = &s->queue[s->head + i];
      s->iovs[i].iov_base = s->bytes + q->offset;
      s->iovs[i].iov_len = q->length;
      s->addrs[i].sin_addr.s_addr = htonl(q->dst);
    }
    int sent = sendmmsg(s->fd, s->msgs, n, 0);
    s->counters[SEND_CALLS]++;
    if (sent > 0) {
      s->head += (uint32_t)sent;
      s->counters[SENT] += sent;
      continue;
    }
    int err = sent < 0 ? errno : EAGAIN;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      if (s->counted < s->head) s->counted = s->head;
      s->counters[QUEUED] += s->tail - s->counted;
      s->counted = s->tail;
      s->waiting = 1;
      if (err == ENOBUFS) uv_timer_start(&s->timer, sender_retry, 1, 0);
      else uv_poll_start(&s->poll, UV_WRITABLE, sender_writable);
      return;
    }
    // This packet cannot go (EMSGSIZE, EPERM from a firewall, EACCES for a broadcast address): count it, go on.
    s->last_errno = err;
    s->counters[FAILED]++;
    s->head++;
  }
  s->head = s->tail = s->byte_tail = s->counted = 0;
}

static void sender_writable(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  sender_t *s = handle->data;
  uv_poll_stop(handle);
  s->waiting = 0;
  sender_flush(s);
}

static void sender_retry(uv_timer_t *timer) {
  sender_t *s = timer->data;
  s->waiting = 0;
  sender_flush(s);
}

static void sender_release(napi_env env, sender_t *s) {
  if (s->closed) return;
  s->closed = 1;
  // Whatever the kernel does not take now is lost: counted as failed.
  s->waiting = 0;
  sender_flush(s);
  if (s->waiting) s->counters[FAILED] += s->tail - s->head;
  s->counters = NULL;
  if (s->counters_ref) napi_delete_reference(env, s->counters_ref);
  s->counters_ref = NULL;
  uv_poll_stop(&s->poll);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->poll, sender_handle_closed);
  uv_close((uv_handle_t *)&s->timer, sender_handle_closed);
  // The poll is closed, so the descriptor may go (libuv no longer watches it).
  close(s->fd);
  s->fd = -1;
}

static void sender_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  sender_t *s = data;
  s->finalized = 1;
  sender_release(env, s);
  if (s->open_handles == 0) sender_free(s);
}

// senderOpen(counters: Float64Array(4), maxPackets, maxBytes, sendBuffer)
static napi_value sender_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  uint32_t capacity, byte_capacity, send_buffer;
  if (!get_u32(env, argv[1], &capacity, "maxPackets") || !get_u32(env, argv[2], &byte_capacity, "maxBytes") ||
      !get_u32(env, argv[3], &send_buffer, "sendBuffer")) return NULL;
  size_t count;
  void *counters;
  if (!get_typed_array(env, argv[0], napi_float64_array, SEND_COUNTERS, &counters, &count, "netio: counters must be a Float64Array of 4")) {
    return NULL;
  }
  if (capacity == 0 || byte_capacity < 65536) {
    napi_throw_range_error(env, NULL, "netio: the send queue needs room for at least one packet and 64 KiB");
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)", errno);
    return NULL;
  }
  int one = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, "setsockopt(IP_HDRINCL)", err);
    return NULL;
  }
  if (send_buffer) set_buffer_size(fd, SO_SNDBUFFORCE, SO_SNDBUF, clamp_to_int(send_buffer));
  // The queue's memory is reserved, not touched: pages are used only as far as a backlog reaches.
  sender_t *s = calloc(1, sizeof *s);
  if (s) {
    s->bytes = malloc(byte_capacity);
    s->queue = malloc((size_t)capacity * sizeof *s->queue);
  }
  if (!s || !s->bytes || !s->queue) {
    close(fd);
    if (s) sender_free(s);
    throw_errno(env, "netio send queue", ENOMEM);
    return NULL;
  }
  s->fd = fd;
  s->capacity = capacity;
  s->byte_capacity = byte_capacity;
  s->counters = counters;
  for (int i = 0; i < SEND_BATCH; i++) {
    s->addrs[i].sin_family = AF_INET;
    s->msgs[i].msg_hdr.msg_name = &s->addrs[i];
    s->msgs[i].msg_hdr.msg_namelen = sizeof s->addrs[i];
    s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  napi_create_reference(env, argv[0], 1, &s->counters_ref);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  // Neither handle keeps the process alive: a backlog is sent while the process runs anyway.
  uv_poll_init(loop, &s->poll, fd);
  uv_timer_init(loop, &s->timer);
  s->poll.data = s->timer.data = s;
  s->open_handles = 2;
  uv_unref((uv_handle_t *)&s->poll);
  uv_unref((uv_handle_t *)&s->timer);
  return wrap_handle(env, s, &SENDER_TAG, sender_finalize);
}

/** Room for `length` more bytes and one more packet, moving the backlog to the front if that makes it. */
static int sender_room(sender_t *s, uint32_t length) {
  if (s->tail < s->capacity && s->byte_tail + length <= s->byte_capacity) return 1;
  if (s->head == 0) return 0;
  uint32_t first = s->queue[s->head].offset;
  memmove(s->bytes, s->bytes + first, s->byte_tail - first);
  for (uint32_t i = s->head; i < s->tail; i++) s->queue[i].offset -= first;
  memmove(s->queue, s->queue + s->head, (size_t)(s->tail - s->head) * sizeof *s->queue);
  s->tail -= s->head;
  s->counted = s->counted > s->head ? s->counted - s->head : 0;
  s->byte_tail -= first;
  s->head = 0;
  return s->tail < s->capacity && s->byte_tail + length <= s->byte_capacity;
}

// senderQueue(handle, buf, offset, length, dstIp): copies the packet; false when the queue is full (counted as failed).
static napi_value sender_queue(napi_env env, napi_callback_info info) {
  napi_value argv[5], out;
  if (!get_args(env, info, 5, argv)) return NULL;
  sender_t *s = get_handle(env, argv[0], &SENDER_TAG);
  uint8_t *data;
  size_t size;
  uint32_t offset, length, dst;
  if (!s || !get_bytes(env, argv[1], &data, &size, "packet") || !get_u32(env, argv[2], &offset, "offset") ||
      !get_u32(env, argv[3], &length, "length") || !get_u32(env, argv[4], &dst, "dstIp")) return NULL;
  if (s->closed) {
    napi_throw_error(env, NULL, "netio: the send socket is closed");
    return NULL;
  }
  if (length == 0 || length > 65535 || (size_t)offset + length > size) {
    napi_throw_range_error(env, NULL, "netio: packet out of the buffer's bounds (or longer than 65535 bytes)");
    return NULL;
  }
  int ok = sender_room(s, length);
  if (ok) {
    memcpy(s->bytes + s->byte_tail, data + offset, length);
    s->queue[s->tail].offset = s->byte_tail;
    s->queue[s->tail].length = length;
    s->queue[s->tail].dst = dst;
    s->tail++;
    s->byte_tail += length;
    if (s->waiting) {
      s->counters[QUEUED]++;
      s->counted = s->tail;
    }
  } else {
    s->counters[FAILED]++;
  }
  napi_get_boolean(env, ok, &out);
  return out;
}

// senderFlush(handle): packets still waiting for the kernel.
static napi_value sender_flush_js(napi_env env, napi_callback_info info) {
  napi_value out;
  sender_t *s = get_handle_arg(env, info, &SENDER_TAG);
  if (!s) return NULL;
  if (!s->closed) sender_flush(s);
  napi_create_uint32(env, s->tail - s->head, &out);
  return out;
}

// senderLastError(handle): why the last failed packet failed ('' when none has).
static napi_value sender_last_error(napi_env env, napi_callback_info info) {
  napi_value out;
  sender_t *s = get_handle_arg(env, info, &SENDER_TAG);
  if (!s) return NULL;
  napi_create_string_utf8(env, s->last_errno ? strerror(s->last_errno) : "", NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value sender_close(napi_env env, napi_callback_info info) {
  sender_t *s = get_handle_arg(env, info, &SENDER_TAG);
  if (s) sender_release(env, s);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor methods[] = {
    { "captureOpen", NULL, capture_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "captureFd", NULL, capture_fd, NULL, NULL, NULL, napi_enumerable, NULL },
    { "captureClose", NULL, capture_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "senderOpen", NULL, sender_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "senderQueue", NULL, sender_queue, NULL, NULL, NULL, napi_enumerable, NULL },
    { "senderFlush", NULL, sender_flush_js, NULL, NULL, NULL, napi_enumerable, NULL },
    { "senderLastError", NULL, sender_last_error, NULL, NULL, NULL, napi_enumerable, NULL },
    { "senderClose", NULL, sender_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
