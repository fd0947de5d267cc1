"""headwater.streams"""
