// pktcap: intercept's capture (Linux). An AF_PACKET/SOCK_DGRAM socket per device (or one for all
// devices), so every packet starts at its IP header whatever the link layer; the user's pcap filter,
// compiled by libpcap for raw IP, runs in the kernel (SO_ATTACH_FILTER). Packets wait in the socket's
// receive buffer, which is kernel memory, not ours; a uv_poll wakes us when it is readable and each
// recvmmsg fills up to `slots` fixed slots of ONE buffer that JavaScript owns (shared by all devices:
// the callbacks run one at a time on the JS thread), then JavaScript is called once per recvmmsg with
// the count. Lengths are the packets' real lengths (MSG_TRUNC), so a cut packet shows. Nothing is
// allocated per packet. Kernel drops (receive buffer full) come from PACKET_STATISTICS.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

static const napi_type_tag PKTCAP_TAG = { 0x706b746361707463ULL, 0x6170747572650001ULL };

// Options (bits of `flags`).
enum { OPT_PROMISC = 1, OPT_IGNORE_OUTGOING = 2 };
// Filled in by stats(): kernel packets (queued + dropped), kernel drops, effective receive buffer.
enum { ST_PACKETS = 0, ST_DROPS = 1, ST_RCVBUF = 2, ST_COUNT = 3 };

// ---- helpers ----

static void throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, strerrorname_np(err), message);
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "pktcap: too few arguments");
    return 0;
  }
  return 1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out, const char *what) {
  if (napi_get_value_uint32(env, v, out) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "pktcap: %s must be a number", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length, const char *what) {
  bool is = false;
  napi_is_buffer(env, v, &is);
  if (is && napi_get_buffer_info(env, v, (void **)data, length) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "pktcap: %s must be a Buffer", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

/** A string argument into `out` (cut to its size); 0 with a TypeError when it is not a string. */
static int get_string(napi_env env, napi_value v, char *out, size_t size, const char *what) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, out, size, &n) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "pktcap: %s must be a string", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
}

static void forward_exception(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return;
  napi_value err;
  napi_get_and_clear_last_exception(env, &err);
  napi_fatal_exception(env, err);
}

// ---- filter ----

// compileFilter(text, snaplen): the filter as classic BPF for packets that start at the IP header
// (DLT_RAW), 8 bytes an instruction. Throws with code "BAD_FILTER" and libpcap's reason.
static napi_value compile_filter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  size_t length;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "pktcap: filter must be a string");
    return NULL;
  }
  uint32_t snaplen;
  if (!get_u32(env, argv[1], &snaplen, "snaplen")) return NULL;
  char *text = malloc(length + 1);
  pcap_t *dead = text ? pcap_open_dead(DLT_RAW, (int)snaplen) : NULL;
  if (!dead) {
    free(text);
    throw_errno(env, "pcap_open_dead", ENOMEM);
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], text, length + 1, &length);
  struct bpf_program program;
  napi_value out = NULL;
  if (pcap_compile(dead, &program, text, 1, PCAP_NETMASK_UNKNOWN) != 0) {
    napi_throw_error(env, "BAD_FILTER", pcap_geterr(dead));
  } else {
    size_t bytes = program.bf_len * sizeof(struct bpf_insn);
    void *data;
    if (napi_create_buffer_copy(env, bytes, program.bf_insns, &data, &out) != napi_ok) out = NULL;
    pcap_freecode(&program);
  }
  pcap_close(dead);
  free(text);
  return out;
}

// ---- devices ----

// interfaces(): the names of this network namespace's devices (if_nameindex).
static napi_value interfaces(napi_env env, napi_callback_info info) {
  (void)info;
  struct if_nameindex *list = if_nameindex();
  if (!list) {
    throw_errno(env, "if_nameindex", errno);
    return NULL;
  }
  napi_value out;
  napi_create_array(env, &out);
  uint32_t i = 0;
  for (struct if_nameindex *p = list; p->if_index != 0; p++) {
    napi_value name;
    napi_create_string_utf8(env, p->if_name, NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, out, i++, name);
  }
  if_freenameindex(list);
  return out;
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
  int32_t *lengths;
  double packets, drops; // PACKET_STATISTICS resets on every read: the totals live here
  napi_ref arena_ref, lengths_ref, callback_ref;
  napi_async_context async;
  struct mmsghdr *msgs;
  struct iovec *iovs;
} pktcap_t;

static void pktcap_free(pktcap_t *c) {
  free(c->msgs);
  free(c->iovs);
  free(c);
}

static void read_statistics(pktcap_t *c) {
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (c->fd < 0 || getsockopt(c->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return;
  c->packets += st.tp_packets; // the kernel counts the dropped ones in too
  c->drops += st.tp_drops;
}

static void pktcap_poll_closed(uv_handle_t *handle) {
  pktcap_t *c = handle->data;
  close(c->fd);
  c->fd = -1;
  c->polling = 0;
  if (c->finalized) pktcap_free(c);
}

static void pktcap_release(napi_env env, pktcap_t *c) {
  if (c->closed) return;
  c->closed = 1;
  read_statistics(c);
  if (c->arena_ref) napi_delete_reference(env, c->arena_ref);
  if (c->lengths_ref) napi_delete_reference(env, c->lengths_ref);
  if (c->callback_ref) napi_delete_reference(env, c->callback_ref);
  if (c->async) napi_async_destroy(env, c->async);
  c->arena_ref = c->lengths_ref = c->callback_ref = NULL;
  c->async = NULL;
  if (c->polling) {
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, pktcap_poll_closed);
  } else if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

static void pktcap_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  pktcap_t *c = data;
  c->finalized = 1;
  pktcap_release(env, c);
  if (!c->polling) pktcap_free(c);
}

static void pktcap_readable(uv_poll_t *handle, int status, int events);

/**
 * libuv stops a poll handle on POLLERR, which a packet socket raises when its device goes down
 * (ENETDOWN) or away: take the socket's error (which clears it), poll again, and return -errno
 * so that JavaScript can say so. The socket works again once the device is back up. With no
 * error to take, POLLERR would only come back at once: stay stopped rather than spin.
 */
static int take_socket_error(pktcap_t *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) return -EIO;
  uv_poll_start(&c->poll, UV_READABLE, pktcap_readable);
  return -err;
}

static void pktcap_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  pktcap_t *c = handle->data;
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
      n = take_socket_error(c);
    } else {
      // MSG_TRUNC: msg_len is the packet's real length even when the slot took only part of it.
      do n = recvmmsg(c->fd, c->msgs, c->slots, MSG_DONTWAIT | MSG_TRUNC, NULL);
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

/**
 * A filter that first drops loopback's outgoing copies: on lo every packet passes twice, out and
 * in, and libpcap (which intercept used before) keeps only the incoming one. Jumps in classic BPF
 * are relative, so the user's program works unchanged after this prefix.
 */
static struct sock_filter *with_loopback_prefix(const struct sock_filter *code, size_t len, unsigned lo_index, size_t *out_len) {
  const struct sock_filter prefix[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PKTTYPE)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_IFINDEX)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, lo_index, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),
  };
  size_t n = sizeof prefix / sizeof prefix[0];
  struct sock_filter *all = malloc((n + len) * sizeof *all);
  if (!all) return NULL;
  memcpy(all, prefix, sizeof prefix);
  memcpy(all + n, code, len * sizeof *code);
  *out_len = n + len;
  return all;
}

/** Everything up to bind(); returns the socket, or -1 with `what` and errno set. */
static int open_socket(unsigned ifindex, const struct sock_filter *code, size_t code_len, int receive_buffer, uint32_t flags,
  const char **what) {
  // Protocol 0: nothing is queued before the filter is on; bind() names the protocol.
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *what = "socket(AF_PACKET, SOCK_DGRAM)";
    return -1;
  }
  struct sock_filter *program = NULL;
  size_t program_len = code_len;
  unsigned lo_index = if_nametoindex("lo");
  if (lo_index && !(flags & OPT_IGNORE_OUTGOING) && (ifindex == 0 || ifindex == lo_index)) {
    program = with_loopback_prefix(code, code_len, lo_index, &program_len);
    if (!program) {
      close(fd);
      errno = ENOMEM;
      *what = "filter";
      return -1;
    }
  }
  struct sock_fprog fprog = { (unsigned short)program_len, program ? program : (struct sock_filter *)code };
  int rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog);
  int err = errno;
  free(program);
  if (rc != 0) {
    close(fd);
    errno = err;
    *what = "setsockopt(SO_ATTACH_FILTER)";
    return -1;
  }
  // Root (CAP_NET_ADMIN) may go past net.core.rmem_max; the caller reads back what it got.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  int one = 1;
  if (flags & OPT_IGNORE_OUTGOING) setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one); // Linux ≥ 4.20
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL); // ETH_P_ALL: outgoing packets are only handed to these
  addr.sll_ifindex = (int)ifindex;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    err = errno;
    close(fd);
    errno = err;
    *what = "bind(AF_PACKET)";
    return -1;
  }
  // A device that is down: bind() succeeds but leaves ENETDOWN pending on the socket.
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
    close(fd);
    errno = err;
    *what = "bind(AF_PACKET)";
    return -1;
  }
  if (ifindex != 0 && (flags & OPT_PROMISC)) {
    // As libpcap does on a named device; the kernel drops the membership with the socket.
    struct packet_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    mreq.mr_ifindex = (int)ifindex;
    mreq.mr_type = PACKET_MR_PROMISC;
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof mreq);
  }
  return fd;
}

// open(device, filter: Buffer, arena: Buffer, slotSize, lengths: Int32Array, receiveBuffer, flags, maxRounds, onBatch(count))
// device '' captures on every device. Packet i of a batch is at arena[i * slotSize], its real
// length lengths[i] (more than slotSize: cut short); a negative count is -errno.
static napi_value pktcap_open(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!get_args(env, info, 9, argv)) return NULL;
  char device[IF_NAMESIZE + 1];
  uint8_t *code, *arena;
  size_t code_size, arena_size;
  uint32_t slot_size, receive_buffer, flags, max_rounds;
  if (!get_string(env, argv[0], device, sizeof device, "device") || !get_bytes(env, argv[1], &code, &code_size, "filter") ||
      !get_bytes(env, argv[2], &arena, &arena_size, "arena") || !get_u32(env, argv[3], &slot_size, "slotSize") ||
      !get_u32(env, argv[5], &receive_buffer, "receiveBuffer") || !get_u32(env, argv[6], &flags, "flags") ||
      !get_u32(env, argv[7], &max_rounds, "maxRounds")) return NULL;
  napi_typedarray_type type;
  size_t slots;
  void *lengths;
  bool is_typed = false;
  napi_is_typedarray(env, argv[4], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[4], &type, &slots, &lengths, NULL, NULL) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, NULL, "pktcap: lengths must be an Int32Array");
    return NULL;
  }
  if (slot_size < 64 || slots == 0 || slots > 1024 || (size_t)slot_size * slots > arena_size || max_rounds == 0) {
    napi_throw_range_error(env, NULL, "pktcap: the arena must hold 1-1024 slots of at least 64 bytes, one length each");
    return NULL;
  }
  if (code_size == 0 || code_size % sizeof(struct sock_filter) != 0 || code_size / sizeof(struct sock_filter) > BPF_MAXINSNS - 8) {
    napi_throw_range_error(env, NULL, "pktcap: a filter is 1-4088 instructions of 8 bytes");
    return NULL;
  }
  napi_valuetype kind;
  napi_typeof(env, argv[8], &kind);
  if (kind != napi_function) {
    napi_throw_type_error(env, NULL, "pktcap: onBatch must be a function");
    return NULL;
  }
  unsigned ifindex = 0;
  if (device[0] != '\0') {
    ifindex = if_nametoindex(device);
    if (ifindex == 0) {
      throw_errno(env, "if_nametoindex", errno == ENXIO ? ENODEV : errno);
      return NULL;
    }
  }

  const char *what = "";
  int fd = open_socket(ifindex, (const struct sock_filter *)code, code_size / sizeof(struct sock_filter),
    receive_buffer > 0x7fffffff ? 0x7fffffff : (int)receive_buffer, flags, &what);
  if (fd < 0) {
    throw_errno(env, what, errno);
    return NULL;
  }
  pktcap_t *c = calloc(1, sizeof *c);
  if (c) {
    c->msgs = calloc(slots, sizeof *c->msgs);
    c->iovs = calloc(slots, sizeof *c->iovs);
  }
  if (!c || !c->msgs || !c->iovs) {
    close(fd);
    if (c) pktcap_free(c);
    throw_errno(env, "pktcap", ENOMEM);
    return NULL;
  }
  c->env = env;
  c->fd = fd;
  c->slots = (uint32_t)slots;
  c->slot_size = slot_size;
  c->max_rounds = max_rounds;
  c->lengths = lengths;
  for (size_t i = 0; i < slots; i++) {
    c->iovs[i].iov_base = arena + i * slot_size;
    c->iovs[i].iov_len = slot_size;
    c->msgs[i].msg_hdr.msg_iov = &c->iovs[i];
    c->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  napi_value name;
  napi_create_string_utf8(env, "tcpcopy:pktcap", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[2], 1, &c->arena_ref);
  napi_create_reference(env, argv[4], 1, &c->lengths_ref);
  napi_create_reference(env, argv[8], 1, &c->callback_ref);
  napi_async_init(env, NULL, name, &c->async);

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &c->poll, fd);
  if (rc == 0) {
    c->polling = 1;
    c->poll.data = c;
    rc = uv_poll_start(&c->poll, UV_READABLE, pktcap_readable);
  }
  if (rc != 0) {
    pktcap_release(env, c);
    c->finalized = 1; // nothing JS-side refers to it; freed once the poll handle is closed
    if (!c->polling) pktcap_free(c);
    throw_errno(env, "uv_poll_start", -rc);
    return NULL;
  }
  napi_value out;
  if (napi_create_external(env, c, pktcap_finalize, NULL, &out) != napi_ok) return NULL;
  napi_type_tag_object(env, out, &PKTCAP_TAG);
  return out;
}

static pktcap_t *get_pktcap(napi_env env, napi_value v) {
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, &PKTCAP_TAG, &ok) != napi_ok || !ok || napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "pktcap: not a capture handle");
    return NULL;
  }
  return data;
}

// stats(handle, out: Float64Array(3)): kernel packets (queued + dropped), kernel drops, and the
// receive buffer the kernel granted (bytes it accounts, twice what was asked), since open.
static napi_value pktcap_stats(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pktcap_t *c = get_pktcap(env, argv[0]);
  if (!c) return NULL;
  napi_typedarray_type type;
  size_t n;
  void *data;
  bool is_typed = false;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[1], &type, &n, &data, NULL, NULL) != napi_ok || type != napi_float64_array || n < ST_COUNT) {
    napi_throw_type_error(env, NULL, "pktcap: stats needs a Float64Array of 3");
    return NULL;
  }
  double *out = data;
  if (!c->closed) read_statistics(c);
  out[ST_PACKETS] = c->packets;
  out[ST_DROPS] = c->drops;
  int rcvbuf = -1;
  socklen_t len = sizeof rcvbuf;
  if (c->closed || getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) != 0) rcvbuf = -1;
  out[ST_RCVBUF] = rcvbuf;
  return NULL;
}

static napi_value pktcap_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  pktcap_t *c = get_pktcap(env, argv[0]);
  if (c) pktcap_release(env, c);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
    { "compileFilter", NULL, compile_filter, NULL, NULL, NULL, napi_default, NULL },
    { "interfaces", NULL, interfaces, NULL, NULL, NULL, napi_default, NULL },
    { "open", NULL, pktcap_open, NULL, NULL, NULL, napi_default, NULL },
    { "stats", NULL, pktcap_stats, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, pktcap_close, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
