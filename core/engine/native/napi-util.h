// What the project's two N-API addons (netio.c, packet-capture.c) share: argument checks that throw
// one clear error, and the batch receiver both captures are built on (a uv_poll wakes us when a
// socket is readable; each recvmmsg fills fixed slots of ONE buffer that JavaScript owns, and
// JavaScript is called once per recvmmsg with the count). Static functions, one copy per addon.
//
// Before including, an addon defines ADDON_NAME (the prefix of its messages, "netio") and
// ADDON_NOT_A_HANDLE (the TypeError get_handle throws), and includes <node_api.h> and <uv.h>
// after defining _GNU_SOURCE and NAPI_VERSION.
#ifndef TCPCOPY_NAPI_UTIL_H
#define TCPCOPY_NAPI_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if !defined(ADDON_NAME) || !defined(ADDON_NOT_A_HANDLE)
#error "define ADDON_NAME and ADDON_NOT_A_HANDLE before including napi-util.h"
#endif

// ---- arguments and errors ----

/** An Error whose code is errno's name (ENOMEM) and whose message says what failed and why. */
static void throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, strerrorname_np(err), message);
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": too few arguments");
    return 0;
  }
  return 1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out, const char *what) {
  if (napi_get_value_uint32(env, v, out) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, ADDON_NAME ": %s must be a number", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length, const char *what) {
  bool is = false;
  napi_is_buffer(env, v, &is);
  if (is && napi_get_buffer_info(env, v, (void **)data, length) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, ADDON_NAME ": %s must be a Buffer", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

/** A typed array of `type` with at least `min_count` elements; 0 with a TypeError saying `message` otherwise. */
static int get_typed_array(napi_env env, napi_value v, napi_typedarray_type type, size_t min_count, void **data, size_t *count,
  const char *message) {
  napi_typedarray_type actual;
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &actual, count, data, NULL, NULL) != napi_ok || actual != type ||
      *count < min_count) {
    napi_throw_type_error(env, NULL, message);
    return 0;
  }
  return 1;
}

static int get_function(napi_env env, napi_value v, const char *message) {
  napi_valuetype kind;
  napi_typeof(env, v, &kind);
  if (kind == napi_function) return 1;
  napi_throw_type_error(env, NULL, message);
  return 0;
}

/** The native object behind a handle made by wrap_handle with the same tag; NULL with a TypeError otherwise. */
static void *get_handle(napi_env env, napi_value v, const napi_type_tag *tag) {
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, tag, &ok) != napi_ok || !ok || napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, ADDON_NOT_A_HANDLE);
    return NULL;
  }
  return data;
}

/** The handle that is a function's only argument (handle-only functions: fd, flush, close). */
static void *get_handle_arg(napi_env env, napi_callback_info info, const napi_type_tag *tag) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  return get_handle(env, argv[0], tag);
}

static napi_value wrap_handle(napi_env env, void *data, const napi_type_tag *tag, napi_finalize finalize) {
  napi_value out;
  if (napi_create_external(env, data, finalize, NULL, &out) != napi_ok) return NULL;
  napi_type_tag_object(env, out, tag);
  return out;
}

/** A JavaScript exception thrown by a callback we made from libuv has no caller to go to: it is fatal. */
static void forward_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return;
  napi_value err;
  napi_get_and_clear_last_exception(env, &err);
  napi_fatal_exception(env, err);
}

/** A socket buffer size from JavaScript, where a uint32 may not fit an int. */
static int clamp_to_int(uint32_t value) {
  return value > 0x7fffffff ? 0x7fffffff : (int)value;
}

/** A receive or send buffer of `size` bytes; root (CAP_NET_ADMIN) may go past net.core.[rw]mem_max. */
static void set_buffer_size(int fd, int force_option, int option, int size) {
  if (setsockopt(fd, SOL_SOCKET, force_option, &size, sizeof size) != 0) setsockopt(fd, SOL_SOCKET, option, &size, sizeof size);
}

// ---- batch receiver ----

/**
 * A readable socket drained into JavaScript's arena. An addon's capture struct has one as its FIRST
 * member, so that freeing the receiver frees the whole struct.
 */
typedef struct batch_rx batch_rx_t;
struct batch_rx {
  napi_env env;
  int fd;
  uv_poll_t poll;
  uv_timer_t hold;    // with hold_ms: the pause after a wake-up that read packets
  int handles;        // libuv handles initialised and not yet closed (the socket closes after the last)
  int closed;    // close() was called
  int finalized; // the JS handle is gone
  uint32_t slots, slot_size, max_rounds;
  uint32_t hold_ms;   // 0: read on every readiness; else see batch_rx_hold
  int drained;        // the last drain left the socket empty (it did not stop at max_rounds)
  int recv_flags;     // for recvmmsg, with MSG_DONTWAIT
  int bare_pollerr;   // the count a POLLERR with no socket error reports; 0: libuv's status
  void (*on_release)(batch_rx_t *rx); // before the socket closes; may be NULL
  int32_t *lengths;
  napi_ref arena_ref, lengths_ref, callback_ref;
  napi_async_context async;
  struct mmsghdr *msgs;
  struct iovec *iovs;
};

/** The arena (slot_size bytes a slot), the lengths (one a slot) and the callback of a batch receiver. */
typedef struct {
  napi_value arena_value, lengths_value, callback;
  uint8_t *arena;
  int32_t *lengths;
  size_t slots;
  uint32_t slot_size, max_rounds;
  uint32_t hold_ms;
} batch_args_t;

/** 0 with a RangeError unless the arena holds 1-1024 slots of at least 64 bytes, one length each. */
static int check_batch_args(napi_env env, const batch_args_t *a, size_t arena_size) {
  if (a->slot_size < 64 || a->slots == 0 || a->slots > 1024 || (size_t)a->slot_size * a->slots > arena_size || a->max_rounds == 0) {
    napi_throw_range_error(env, NULL, ADDON_NAME ": the arena must hold 1-1024 slots of at least 64 bytes, one length each");
    return 0;
  }
  return 1;
}

static void batch_rx_free(batch_rx_t *rx) {
  free(rx->msgs);
  free(rx->iovs);
  free(rx); // the whole capture struct: rx is its first member
}

static void batch_rx_handle_closed(uv_handle_t *handle) {
  batch_rx_t *rx = handle->data;
  if (--rx->handles > 0) return;
  close(rx->fd);
  rx->fd = -1;
  if (rx->finalized) batch_rx_free(rx);
}

static void batch_rx_release(napi_env env, batch_rx_t *rx) {
  if (rx->closed) return;
  rx->closed = 1;
  if (rx->on_release) rx->on_release(rx);
  if (rx->arena_ref) napi_delete_reference(env, rx->arena_ref);
  if (rx->lengths_ref) napi_delete_reference(env, rx->lengths_ref);
  if (rx->callback_ref) napi_delete_reference(env, rx->callback_ref);
  if (rx->async) napi_async_destroy(env, rx->async);
  rx->arena_ref = rx->lengths_ref = rx->callback_ref = NULL;
  rx->async = NULL;
  if (rx->handles > 0) {
    uv_poll_stop(&rx->poll);
    uv_close((uv_handle_t *)&rx->poll, batch_rx_handle_closed);
    if (rx->hold_ms) {
      uv_timer_stop(&rx->hold);
      uv_close((uv_handle_t *)&rx->hold, batch_rx_handle_closed);
    }
  } else if (rx->fd >= 0) {
    close(rx->fd);
    rx->fd = -1;
  }
}

static void batch_rx_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  batch_rx_t *rx = data;
  rx->finalized = 1;
  batch_rx_release(env, rx);
  if (rx->handles == 0) batch_rx_free(rx);
}

static void batch_rx_readable(uv_poll_t *handle, int status, int events);

/**
 * libuv stops a poll handle on POLLERR (a packet socket raises it when its device goes down or
 * away): take the socket's error (which clears it), poll again, and return -errno so that
 * JavaScript can say so. With no error to take, POLLERR would only come back at once: stay
 * stopped rather than spin.
 */
static int batch_rx_take_error(batch_rx_t *rx, int status) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(rx->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) return rx->bare_pollerr ? rx->bare_pollerr : status; // libuv's errors are -errno
  uv_poll_start(&rx->poll, UV_READABLE, batch_rx_readable);
  return -err;
}

/** Reads what the socket holds (up to max_rounds batches), each batch one call of the callback; the packets read. */
static int batch_rx_drain(batch_rx_t *rx, int status) {
  napi_env env = rx->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return 0;
  napi_value callback, receiver, argv[1], result;
  napi_get_reference_value(env, rx->callback_ref, &callback);
  napi_get_global(env, &receiver);
  int total = 0;
  rx->drained = 0;
  for (uint32_t round = 0; round < rx->max_rounds && !rx->closed; round++) {
    int n;
    if (status < 0) {
      n = batch_rx_take_error(rx, status);
    } else {
      do n = recvmmsg(rx->fd, rx->msgs, rx->slots, MSG_DONTWAIT | rx->recv_flags, NULL);
      while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        rx->drained = 1;
        break;
      }
      if (n < 0) n = -errno;
    }
    if (n == 0) {
      rx->drained = 1;
      break;
    }
    for (int i = 0; i < n; i++) rx->lengths[i] = (int32_t)rx->msgs[i].msg_len;
    napi_create_int32(env, n, &argv[0]);
    if (napi_make_callback(env, rx->async, receiver, callback, 1, argv, &result) != napi_ok) {
      forward_exception(env);
      break;
    }
    if (n < 0) break;
    total += n;
    if ((uint32_t)n < rx->slots) {
      rx->drained = 1;
      break;
    }
  }
  napi_close_handle_scope(env, scope);
  return total;
}

static void batch_rx_hold_over(uv_timer_t *timer);

/**
 * With hold_ms, a wake-up that read packets and left the socket empty stops the poll for hold_ms: the
 * packets that follow wait in the socket's buffer and are read together at the next wake-up (one call into
 * JavaScript instead of one per packet at moderate rates). A drain that stopped at max_rounds is not held:
 * the socket still holds packets, and the next turn of the loop reads on (a hold there would cap the
 * capture at max_rounds x slots packets per hold_ms). The timer only polls again: the reading stays in the
 * loop's poll phase, right before the check phase where what the packets queued is sent (a read in the
 * timers phase would wait behind the other timers, a forced GC say).
 */
static void batch_rx_hold(batch_rx_t *rx, int read) {
  if (!rx->hold_ms || rx->closed || read <= 0 || !rx->drained) return;
  uv_poll_stop(&rx->poll);
  uv_timer_start(&rx->hold, batch_rx_hold_over, rx->hold_ms, 0);
}

static void batch_rx_hold_over(uv_timer_t *timer) {
  batch_rx_t *rx = timer->data;
  if (!rx->closed) uv_poll_start(&rx->poll, UV_READABLE, batch_rx_readable);
}

static void batch_rx_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  batch_rx_t *rx = handle->data;
  if (rx->closed) return;
  int read = batch_rx_drain(rx, status);
  if (status >= 0) batch_rx_hold(rx, read);
}

/**
 * A zeroed capture struct of `size` bytes (a batch_rx_t first) reading `fd`, which it owns from
 * here on. NULL with an exception pending when it cannot start (`oom_what` names it for ENOMEM);
 * the caller fills in its own fields, then hands the struct to batch_rx_wrap.
 */
static batch_rx_t *batch_rx_open(napi_env env, size_t size, int fd, const batch_args_t *a, int recv_flags, int bare_pollerr,
  void (*on_release)(batch_rx_t *rx), const char *resource_name, const char *oom_what) {
  batch_rx_t *rx = calloc(1, size);
  if (rx) {
    rx->msgs = calloc(a->slots, sizeof *rx->msgs);
    rx->iovs = calloc(a->slots, sizeof *rx->iovs);
  }
  if (!rx || !rx->msgs || !rx->iovs) {
    close(fd);
    if (rx) batch_rx_free(rx);
    throw_errno(env, oom_what, ENOMEM);
    return NULL;
  }
  rx->env = env;
  rx->fd = fd;
  rx->slots = (uint32_t)a->slots;
  rx->slot_size = a->slot_size;
  rx->max_rounds = a->max_rounds;
  rx->hold_ms = a->hold_ms;
  rx->recv_flags = recv_flags;
  rx->bare_pollerr = bare_pollerr;
  rx->on_release = on_release;
  rx->lengths = a->lengths;
  for (size_t i = 0; i < a->slots; i++) {
    rx->iovs[i].iov_base = a->arena + i * a->slot_size;
    rx->iovs[i].iov_len = a->slot_size;
    rx->msgs[i].msg_hdr.msg_iov = &rx->iovs[i];
    rx->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  napi_value name;
  napi_create_string_utf8(env, resource_name, NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, a->arena_value, 1, &rx->arena_ref);
  napi_create_reference(env, a->lengths_value, 1, &rx->lengths_ref);
  napi_create_reference(env, a->callback, 1, &rx->callback_ref);
  napi_async_init(env, NULL, name, &rx->async);

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &rx->poll, fd);
  if (rc == 0) {
    rx->handles = 1;
    rx->poll.data = rx;
    if (rx->hold_ms) {
      uv_timer_init(loop, &rx->hold); // cannot fail
      rx->hold.data = rx;
      rx->handles = 2;
    }
    rc = uv_poll_start(&rx->poll, UV_READABLE, batch_rx_readable);
  }
  if (rc != 0) {
    batch_rx_release(env, rx);
    rx->finalized = 1; // nothing JS-side refers to it; freed once its handles are closed
    if (rx->handles == 0) batch_rx_free(rx);
    throw_errno(env, "uv_poll_start", -rc);
    return NULL;
  }
  return rx;
}

/** The JavaScript handle of a started receiver: closing or collecting it releases the socket. */
static napi_value batch_rx_wrap(napi_env env, batch_rx_t *rx, const napi_type_tag *tag) {
  return wrap_handle(env, rx, tag, batch_rx_finalize);
}

#endif
