print("muxctl: not built yet")
