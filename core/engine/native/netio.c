// netio: tcpcopy's live capture and send sockets (Linux), as few wake-ups and syscalls as we can.
//
// Capture: an AF_INET/SOCK_RAW/IPPROTO_TCP socket (every inbound TCP segment of the host, on every
// device) with a classic BPF program attached, so only the transfers' packets are queued to it. A
// uv_poll wakes us when it is readable; each recvmmsg fills up to `slots` fixed slots of ONE buffer
// that JavaScript owns, and JavaScript is called once per recvmmsg with the count (lengths in an
// Int32Array it owns too). Nothing is allocated per packet.
//
// Send: an IPPROTO_RAW socket (IP_HDRINCL). Packets are copied into a bounded queue as the engine
// writes them and go out with sendmmsg when JavaScript flushes (once per event-loop turn). When the
// kernel says EAGAIN the rest waits for a writable poll, on ENOBUFS for a 1 ms timer; other errors
// fail (and count) that packet only. Counters live in a Float64Array JavaScript reads directly.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
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

// ---- helpers: arguments and errors ----

static void throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  const char *code = strerrorname_np(err);
  napi_throw_error(env, code, message);
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "netio: too few arguments");
    return 0;
  }
  return 1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out, const char *what) {
  if (napi_get_value_uint32(env, v, out) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "netio: %s must be a number", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

static void *get_handle(napi_env env, napi_value v, const napi_type_tag *tag) {
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok || napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "netio: not a handle of this kind");
    return NULL;
  }
  return data;
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length, const char *what) {
  bool is = false;
  napi_is_buffer(env, v, &is);
  if (is && napi_get_buffer_info(env, v, (void **)data, length) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "netio: %s must be a Buffer", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

static napi_value wrap_handle(napi_env env, void *data, const napi_type_tag *tag, napi_finalize finalize) {
  napi_value out;
  if (napi_create_external(env, data, finalize, NULL, &out) != napi_ok) return NULL;
  napi_type_tag_object(env, out, tag);
  return out;
}

/** A receive or send buffer of `size` bytes; root may go past net.core.[rw]mem_max. */
static void set_buffer_size(int fd, int force_option, int option, int size) {
  if (setsockopt(fd, SOL_SOCKET, force_option, &size, sizeof size) != 0) setsockopt(fd, SOL_SOCKET, option, &size, sizeof size);
}

static void forward_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return;
  napi_value err;
  napi_get_and_clear_last_exception(env, &err);
  napi_fatal_exception(env, err);
}

// ---- capture ----

typedef struct {
  napi_env env;
  int fd;
  uv_poll_t poll;
  int polling;   // poll handle initialised and not yet closed
  int closed;    // close() was called
  int finalized; // the JS handle is gone
  uint32_t slots, slot_size, max_rounds;
  uint8_t *arena;
  int32_t *lengths;
  napi_ref arena_ref, lengths_ref, callback_ref;
  napi_async_context async;
  struct mmsghdr *msgs;
  struct iovec *iovs;
} capture_t;

static void capture_free(capture_t *c) {
  free(c->msgs);
  free(c->iovs);
  free(c);
}

static void capture_poll_closed(uv_handle_t *handle) {
  capture_t *c = handle->data;
  close(c->fd);
  c->fd = -1;
  c->polling = 0;
  if (c->finalized) capture_free(c);
}

static void capture_release(napi_env env, capture_t *c) {
  if (c->closed) return;
  c->closed = 1;
  if (c->arena_ref) napi_delete_reference(env, c->arena_ref);
  if (c->lengths_ref) napi_delete_reference(env, c->lengths_ref);
  if (c->callback_ref) napi_delete_reference(env, c->callback_ref);
  if (c->async) napi_async_destroy(env, c->async);
  c->arena_ref = c->lengths_ref = c->callback_ref = NULL;
  c->async = NULL;
  if (c->polling) {
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, capture_poll_closed);
  } else if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

static void capture_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  capture_t *c = data;
  c->finalized = 1;
  capture_release(env, c);
  if (!c->polling) capture_free(c);
}

static void capture_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  capture_t *c = handle->data;
  if (c->closed) return;
  napi_env env = c->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver, argv[1], result;
  napi_get_reference_value(env, c->callback_ref, &callback);
  napi_get_global(env, &receiver);
  for (uint32_t round = 0; round < c->max_rounds && !c->closed; round++) {
    int n;
    if (status < 0) {
      // libuv stopped the poll on POLLERR: take the socket's error (which clears it) and poll
      // again, or the capture would stop silently. No error to take: stay stopped, not spin.
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) uv_poll_start(handle, UV_READABLE, capture_readable);
      n = err != 0 ? -err : status; // libuv's errors are -errno
    } else {
      do n = recvmmsg(c->fd, c->msgs, c->slots, MSG_DONTWAIT, NULL);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) n = -errno;
    }
    if (n == 0) break;
    for (int i = 0; i < n; i++) c->lengths[i] = (int32_t)c->msgs[i].msg_len;
    napi_create_int32(env, n, &argv[0]);
    if (napi_make_callback(env, c->async, receiver, callback, 1, argv, &result) != napi_ok) {
      forward_exception(env);
      break;
    }
    if (n < 0 || (uint32_t)n < c->slots) break;
  }
  napi_close_handle_scope(env, scope);
}

// captureOpen(arena: Buffer, slotSize, lengths: Int32Array, filter: Buffer | null, receiveBuffer, maxRounds, onBatch(count))
// Packet i of a batch is at arena[i * slotSize], lengths[i] bytes; a negative count is -errno.
static napi_value capture_open(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv)) return NULL;
  uint8_t *arena;
  size_t arena_size;
  uint32_t slot_size, receive_buffer, max_rounds;
  if (!get_bytes(env, argv[0], &arena, &arena_size, "arena") || !get_u32(env, argv[1], &slot_size, "slotSize") ||
      !get_u32(env, argv[4], &receive_buffer, "receiveBuffer") || !get_u32(env, argv[5], &max_rounds, "maxRounds")) return NULL;
  napi_typedarray_type type;
  size_t slots;
  void *lengths;
  bool is_typed = false;
  napi_is_typedarray(env, argv[2], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[2], &type, &slots, &lengths, NULL, NULL) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "netio: lengths must be an Int32Array");
    return NULL;
  }
  if (slot_size < 64 || slots == 0 || slots > 1024 || (size_t)slot_size * slots > arena_size || max_rounds == 0) {
    napi_throw_range_error(env, NULL, "netio: the arena must hold 1-1024 slots of at least 64 bytes, one length each");
    return NULL;
  }
  napi_valuetype kind;
  napi_typeof(env, argv[6], &kind);
  if (kind != napi_function) {
    napi_throw_type_error(env, NULL, "netio: onBatch must be a function");
    return NULL;
  }
  struct sock_fprog program = { 0, NULL };
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
  if (receive_buffer) set_buffer_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)(receive_buffer > 0x7fffffff ? 0x7fffffff : receive_buffer));

  capture_t *c = calloc(1, sizeof *c);
  if (c) {
    c->msgs = calloc(slots, sizeof *c->msgs);
    c->iovs = calloc(slots, sizeof *c->iovs);
  }
  if (!c || !c->msgs || !c->iovs) {
    close(fd);
    if (c) capture_free(c);
    throw_errno(env, "netio capture", ENOMEM);
    return NULL;
  }
  c->env = env;
  c->fd = fd;
  c->slots = (uint32_t)slots;
  c->slot_size = slot_size;
  c->max_rounds = max_rounds;
  c->arena = arena;
  c->lengths = lengths;
  for (size_t i = 0; i < slots; i++) {
    c->iovs[i].iov_base = arena + i * slot_size;
    c->iovs[i].iov_len = slot_size;
    c->msgs[i].msg_hdr.msg_iov = &c->iovs[i];
    c->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  napi_value name;
  napi_create_string_utf8(env, "tcpcopy:capture", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[0], 1, &c->arena_ref);
  napi_create_reference(env, argv[2], 1, &c->lengths_ref);
  napi_create_reference(env, argv[6], 1, &c->callback_ref);
  napi_async_init(env, NULL, name, &c->async);

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &c->poll, fd);
  if (rc == 0) {
    c->polling = 1;
    c->poll.data = c;
    rc = uv_poll_start(&c->poll, UV_READABLE, capture_readable);
  }
  if (rc != 0) {
    capture_release(env, c);
    c->finalized = 1; // nothing JS-side refers to it; freed once the poll handle is closed
    if (!c->polling) capture_free(c);
    throw_errno(env, "uv_poll_start", -rc);
    return NULL;
  }
  return wrap_handle(env, c, &CAPTURE_TAG, capture_finalize);
}

static napi_value capture_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  capture_t *c = get_handle(env, argv[0], &CAPTURE_TAG);
  if (!c) return NULL;
  napi_create_int32(env, c->closed ? -1 : c->fd, &out);
  return out;
}

static napi_value capture_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  capture_t *c = get_handle(env, argv[0], &CAPTURE_TAG);
  if (c) capture_release(env, c);
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
  napi_typedarray_type type;
  size_t count;
  void *counters;
  bool is_typed = false;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[0], &type, &count, &counters, NULL, NULL) != napi_ok ||
      type != napi_float64_array || count < SEND_COUNTERS) {
    napi_throw_type_error(env, NULL, "netio: counters must be a Float64Array of 4");
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
  if (send_buffer) set_buffer_size(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)(send_buffer > 0x7fffffff ? 0x7fffffff : send_buffer));
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
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  sender_t *s = get_handle(env, argv[0], &SENDER_TAG);
  if (!s) return NULL;
  if (!s->closed) sender_flush(s);
  napi_create_uint32(env, s->tail - s->head, &out);
  return out;
}

// senderLastError(handle): why the last failed packet failed ('' when none has).
static napi_value sender_last_error(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  sender_t *s = get_handle(env, argv[0], &SENDER_TAG);
  if (!s) return NULL;
  napi_create_string_utf8(env, s->last_errno ? strerror(s->last_errno) : "", NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value sender_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  sender_t *s = get_handle(env, argv[0], &SENDER_TAG);
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
