"""Building blocks of ``landscapes.networks``: data generated from a seed, small modules, sequence tasks."""
