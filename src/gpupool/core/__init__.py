"""The scheduling core: queues, placement, fit, gangs, preemption and capacity planning.

Pure and deterministic: it imports nothing third-party and nothing of gpupool outside it, takes
``now`` as an argument, and hands its decisions back as data (``decisions``).
"""
