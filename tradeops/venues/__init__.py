"""Venue adapters behind one interface: the paper exchange and live venues through ccxt."""
