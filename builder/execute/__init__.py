"""Running the discipline units: what every executor shares (admission, progress, the engine built once, the
figures of how the endpoints took a build), and the executors themselves, siblings that each run units and
return them: in this process (local.py) or on a Ray cluster (ray/)."""
