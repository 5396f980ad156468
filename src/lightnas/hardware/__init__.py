"""Cost on the target: parameters, MACs, bytes, memory (:mod:`.cost`), measured
latency (:mod:`.latency`), lookup tables (:mod:`.lut`). The package itself
imports nothing, so that the command line builds its parser without torch."""
