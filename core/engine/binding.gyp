{
  "targets": [
    {
      "target_name": "netio",
      "sources": ["native/netio.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    },
    {
      "target_name": "pktcap",
      "sources": ["native/packet-capture.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "libraries": ["-lpcap"]
    }
  ]
}
