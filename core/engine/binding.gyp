{
  "targets": [
    {
      "target_name": "netio",
      "sources": ["native/netio.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    }
  ]
}
