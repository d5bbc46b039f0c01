"""Plotly figure builders for DEO Lab: pure functions from traces/arrays to ``go.Figure``.

Never imports ``streamlit``; never trains anything.
"""
