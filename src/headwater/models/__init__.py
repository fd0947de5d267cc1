"""headwater.models"""
