"""The class axis of an output, one rule each: labels from logits, probabilities (softmax or
sigmoid), the names of label values and their colours.

A leaf package (numpy and :mod:`tilerun.errors` only), so the engine that writes outputs and
the sinks, reports and exports that read them share these rules without importing each other.
"""
