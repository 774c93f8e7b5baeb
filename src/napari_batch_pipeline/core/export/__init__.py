"""Export: a pipeline written as a standalone Python script that runs without this package.

Holds the script writer (:mod:`.script`), the code the script runs, copied into it
(:mod:`.runtime`: finding images, planning, running and writing tables as the engine
does; :mod:`.screening`: a screen's checks and conclusions), and the copier that follows
every name that code uses (:mod:`.bundle`). It reads the rest of the core; nothing in
the core imports it.
"""
