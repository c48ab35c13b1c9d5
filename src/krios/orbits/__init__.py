"""orbits"""
