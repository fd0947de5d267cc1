"""headwater.gateway"""
