{
  "targets": [
    {
      "target_name": "roam_shm",
      "sources": ["roam_shm.cc"],
      "cflags_cc": ["-O2", "-Wall", "-Wno-cast-function-type", "-std=c++17"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O2", "-std=c++17"] }
    }
  ]
}
