"""headwater.sandbox"""
