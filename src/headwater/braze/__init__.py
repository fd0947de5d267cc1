"""headwater.braze"""
