{
  "targets": [
    {
      "target_name": "roam_cobs",
      "sources": ["roam_cobs.c"],
      "cflags": ["-O3", "-Wall"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O2"] }
    }
  ]
}
