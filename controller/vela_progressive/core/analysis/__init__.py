"""Metric analysis: what a strategy measures (``spec``), the PromQL it sends (``queries``) and
how a measurement is judged (``judge``). Pure: the shell runs the queries."""
