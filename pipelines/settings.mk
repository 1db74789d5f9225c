# pipelines/settings.mk: stages that are redone when their variables change.
#
# $(call settings,NAME,VARS) names a file, $(OUT)/.NAME.settings, holding
# "VAR=value" for each of VARS. It is rewritten (at parse time) only when a
# value differs from what it holds, so a target that lists it as a
# prerequisite is redone after EPOCHS=3 becomes EPOCHS=4, and not otherwise.

settings = $(call settings_sync,$(OUT)/.$(1).settings,$(strip $(foreach v,$(2),$(v)=$($(v)))))$(OUT)/.$(1).settings
settings_sync = $(if $(call same,$(2),$(file <$(1))),,$(shell mkdir -p $(dir $(1)))$(file >$(1),$(2)))
same = $(and $(findstring x$(1)x,x$(2)x),$(findstring x$(2)x,x$(1)x))
