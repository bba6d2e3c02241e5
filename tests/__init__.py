"""The test suite. ``make test`` runs it in two workers on two cores, and its tests start
more processes that compute beside them (the CLI, the service, Ray actors, llama.cpp).
OpenMP threads that spin while they wait for work (libgomp's default) then take the cores
from the other processes' work: two heavy test files together took 444 s with spinning,
119 s without. Set here, before anything imports torch, and inherited by every process a
test starts."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
