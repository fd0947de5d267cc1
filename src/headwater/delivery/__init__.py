"""headwater.delivery"""
