"""The analysts' Panel dashboard: pages over the read service, and the chart builders they share."""
