"""headwater.syncs"""
