"""headwater.cli"""
