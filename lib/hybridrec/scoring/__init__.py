"""Top-N scoring: parameters from config (params), the broadcast item side (index), the numpy
kernel (kernel), approximate retrieval (retrieval) and the mapInArrow adapter (arrow)."""
