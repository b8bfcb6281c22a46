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
#define ADDON_NAME "pktcap"
#define ADDON_NOT_A_HANDLE "pktcap: not a capture handle"
#include "napi-util.h"
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

/** A string argument into `out` (cut to its size); 0 with a TypeError when it is not a string. */
static int get_string(napi_env env, napi_value v, char *out, size_t size, const char *what) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, out, size, &n) == napi_ok) return 1;
  char message[128];
  snprintf(message, sizeof message, "pktcap: %s must be a string", what);
  napi_throw_type_error(env, NULL, message);
  return 0;
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
  batch_rx_t rx; // first: freeing the receiver frees this
  double packets, drops; // PACKET_STATISTICS resets on every read: the totals live here
} pktcap_t;

static void read_statistics(pktcap_t *c) {
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (c->rx.fd < 0 || getsockopt(c->rx.fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return;
  c->packets += st.tp_packets; // the kernel counts the dropped ones in too
  c->drops += st.tp_drops;
}

/** The totals must be read before the socket goes. */
static void pktcap_on_release(batch_rx_t *rx) {
  read_statistics((pktcap_t *)rx);
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
  // The caller reads back what it got.
  set_buffer_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, receive_buffer);
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
  batch_args_t batch = { argv[2], argv[4], argv[8], NULL, NULL, 0, 0, 0, 0 };
  char device[IF_NAMESIZE + 1];
  uint8_t *code;
  size_t code_size, arena_size;
  uint32_t receive_buffer, flags;
  void *lengths;
  if (!get_string(env, argv[0], device, sizeof device, "device") || !get_bytes(env, argv[1], &code, &code_size, "filter") ||
      !get_bytes(env, argv[2], &batch.arena, &arena_size, "arena") || !get_u32(env, argv[3], &batch.slot_size, "slotSize") ||
      !get_u32(env, argv[5], &receive_buffer, "receiveBuffer") || !get_u32(env, argv[6], &flags, "flags") ||
      !get_u32(env, argv[7], &batch.max_rounds, "maxRounds") ||
      !get_typed_array(env, argv[4], napi_int32_array, 0, &lengths, &batch.slots, "pktcap: lengths must be an Int32Array") ||
      !check_batch_args(env, &batch, arena_size)) return NULL;
  batch.lengths = lengths;
  if (code_size == 0 || code_size % sizeof(struct sock_filter) != 0 || code_size / sizeof(struct sock_filter) > BPF_MAXINSNS - 8) {
    napi_throw_range_error(env, NULL, "pktcap: a filter is 1-4088 instructions of 8 bytes");
    return NULL;
  }
  if (!get_function(env, argv[8], "pktcap: onBatch must be a function")) return NULL;
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
    clamp_to_int(receive_buffer), flags, &what);
  if (fd < 0) {
    throw_errno(env, what, errno);
    return NULL;
  }
  // MSG_TRUNC: msg_len is the packet's real length even when the slot took only part of it. A
  // POLLERR (device down or gone) with no socket error to take is reported as EIO.
  pktcap_t *c = (pktcap_t *)batch_rx_open(env, sizeof *c, fd, &batch, MSG_TRUNC, -EIO, pktcap_on_release, "tcpcopy:pktcap", "pktcap");
  return c ? batch_rx_wrap(env, &c->rx, &PKTCAP_TAG) : NULL;
}

// stats(handle, out: Float64Array(3)): kernel packets (queued + dropped), kernel drops, and the
// receive buffer the kernel granted (bytes it accounts, twice what was asked), since open.
static napi_value pktcap_stats(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pktcap_t *c = get_handle(env, argv[0], &PKTCAP_TAG);
  if (!c) return NULL;
  size_t n;
  void *data;
  if (!get_typed_array(env, argv[1], napi_float64_array, ST_COUNT, &data, &n, "pktcap: stats needs a Float64Array of 3")) return NULL;
  double *out = data;
  if (!c->rx.closed) read_statistics(c);
  out[ST_PACKETS] = c->packets;
  out[ST_DROPS] = c->drops;
  int rcvbuf = -1;
  socklen_t len = sizeof rcvbuf;
  if (c->rx.closed || getsockopt(c->rx.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) != 0) rcvbuf = -1;
  out[ST_RCVBUF] = rcvbuf;
  return NULL;
}

static napi_value pktcap_close(napi_env env, napi_callback_info info) {
  pktcap_t *c = get_handle_arg(env, info, &PKTCAP_TAG);
  if (c) batch_rx_release(env, &c->rx);
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
